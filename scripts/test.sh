#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test.
#   scripts/test.sh                 # RelWithDebInfo build in build/
#   BUILD_DIR=build-asan CMAKE_ARGS=-DRINGFENCE_SANITIZE=ON scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

BUILD_DIR="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" \
  --timeout 600 ${CTEST_ARGS:-}
