#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: for now the in-process
# example, which rolls a good release out to an emulated fleet of 20,000 hosts
# and then a boot-looping release that the gate halts in its first stage.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -G Ninja
cmake --build build -j "$(nproc)" --target ringfence_example
./build/bin/ringfence_example "$@"
