#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: the ringfenced service
# on its SQLite default with an emulated gRPC fleet (scripts/demo.sh): a good
# release rolled out to completion, a boot-looping one halted in its first
# stage. `scripts/run.sh --in-process` runs the in-process library example
# (20,000 emulated hosts, fake clock) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -G Ninja
if [ "${1:-}" = "--in-process" ]; then
  shift
  cmake --build build -j "$(nproc)" --target ringfence_example
  exec ./build/bin/ringfence_example "$@"
fi
cmake --build build -j "$(nproc)" --target ringfenced ringctl ringfence_demo_fleet \
  ringfence-agent
exec scripts/demo.sh
