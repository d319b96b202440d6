#!/usr/bin/env bash
# Installs everything ringfence needs to build and test on Debian 12.
# Idempotent: packages already present are left alone. Run as root (or via sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang clang-format
  libclang-rt-14-dev
  libabsl-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libsqlite3-dev sqlite3
  libpq-dev
  postgresql  # the tests' throwaway server (scripts/pg-test-server.sh)
  libssl-dev openssl
  libre2-dev
  libcli11-dev
  libcpp-httplib-dev prometheus-cpp-dev
  libcurl4-openssl-dev  # webhook notifications
  libhttp-parser-dev  # the agent's HTTP transport (answers parsed)
  prometheus
  chromium chromium-driver python3-selenium  # the dashboard's browser test
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
