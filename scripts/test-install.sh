#!/usr/bin/env bash
# Installs a build of ringfence to a temporary prefix (cmake --install), then
# builds examples/consumer against it as a project of its own
# (find_package(ringfence CONFIG) with CMAKE_PREFIX_PATH=<prefix>) and runs
# it: the README's library example; and, when the build has the service, the
# consumer's gRPC client (ringfence::api) against the installed ringfenced.
#   scripts/test-install.sh                  # configure (if needed), build and
#                                            # test build-install/
#   scripts/test-install.sh DIR              # the same with DIR
#   scripts/test-install.sh --no-build DIR   # DIR as it is (ctest's
#                                            # install_consumer test)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

build=1
if [ "${1:-}" = --no-build ]; then
  build=0
  shift
fi
BUILD_DIR="${1:-build-install}"
fail() {
  echo "test-install: FAIL: $*" >&2
  exit 1
}

if [ "$build" = 1 ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" -G Ninja -DRINGFENCE_BUILD_TESTS=OFF \
      -DRINGFENCE_BUILD_BENCH=OFF
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi
[ -f "$BUILD_DIR/CMakeCache.txt" ] || fail "$BUILD_DIR is not a build directory"
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt"; }

# A destination outside the prefix (an absolute one) would be written to
# this machine, not to the temporary prefix.
if grep -rq --include=cmake_install.cmake 'DESTINATION "/' "$BUILD_DIR"; then
  fail "$BUILD_DIR installs files outside its prefix:" \
    "$(grep -rh --include=cmake_install.cmake -o 'DESTINATION "/[^"]*"' "$BUILD_DIR" | sort -u)"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ringfence-install.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PREFIX="$WORK/prefix"

echo "test-install: cmake --install $BUILD_DIR --prefix $PREFIX"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" ||
  { cat "$WORK/install.log"; fail "cmake --install"; }
LIBDIR="$(cache CMAKE_INSTALL_LIBDIR)"
for f in include/ringfence/controller.h include/ringfence/config/v1/config.pb.h \
  include/ringfence/content/v1/content.pb.h "$LIBDIR/libringfence.a" \
  "$LIBDIR/libringfence_proto.a" "$LIBDIR/cmake/ringfence/ringfenceConfig.cmake" \
  "$LIBDIR/cmake/ringfence/ringfenceConfigVersion.cmake" \
  share/ringfence/proto/ringfence/config/v1/config.proto; do
  [ -f "$PREFIX/$f" ] || fail "the install has no $f"
done
# Nothing installed for library users may point back into this tree.
if grep -rlF "$ROOT" "$PREFIX/include" "$PREFIX/$LIBDIR/cmake"; then
  fail "installed files name $ROOT (above)"
fi

service=0
if [ -x "$PREFIX/bin/ringfenced" ]; then
  service=1
  for f in bin/ringctl include/ringfence/v1/ringfence.grpc.pb.h \
    include/google/rpc/status.pb.h share/ringfence/proto/ringfence/v1/ringfence.proto \
    lib/systemd/system/ringfenced.service etc/default/ringfenced \
    include/ringfence/agent_c.h "$LIBDIR/libringfence_agent_c.a" \
    include/ringfence/agent_server.h "$LIBDIR/libringfence_agent_http.a"; do
    [ -f "$PREFIX/$f" ] || fail "the install has no $f"
  done
  grep -qxF "ExecStart=$PREFIX/bin/ringfenced \$RINGFENCED_ARGS" \
    "$PREFIX/lib/systemd/system/ringfenced.service" ||
    fail "the installed unit does not start $PREFIX/bin/ringfenced"
  grep -qxF "EnvironmentFile=$PREFIX/etc/default/ringfenced" \
    "$PREFIX/lib/systemd/system/ringfenced.service" ||
    fail "the installed unit does not read $PREFIX/etc/default/ringfenced"
else
  echo "test-install: $BUILD_DIR has no service (RINGFENCE_BUILD_SERVICE=OFF):" \
    "testing the library only"
fi

# The consumer is built as the library was: same compiler, build type and,
# in a sanitizer build, the sanitizers (its static libraries need them).
consumer_args=(-DCMAKE_PREFIX_PATH="$PREFIX"
  -DCMAKE_CXX_COMPILER="$(cache CMAKE_CXX_COMPILER)"
  -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)"
  -DCMAKE_BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)"
  -DRINGFENCE_CONSUMER_API="$([ "$service" = 1 ] && echo ON || echo OFF)")
if [ "$(cache RINGFENCE_SANITIZE)" = ON ]; then
  consumer_args+=(
    "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer"
    "-DCMAKE_C_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer"
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined")
fi
echo "test-install: building examples/consumer against $PREFIX"
cmake -S examples/consumer -B "$WORK/consumer" -G Ninja "${consumer_args[@]}" \
  >"$WORK/consumer-configure.log" ||
  { cat "$WORK/consumer-configure.log"; fail "configuring examples/consumer"; }
cmake --build "$WORK/consumer" -j "$(nproc)" >"$WORK/consumer-build.log" ||
  { cat "$WORK/consumer-build.log"; fail "building examples/consumer"; }

# The README's example reads examples/plans/default.textproto: run it from
# the repository root, as the README does.
out="$("$WORK/consumer/ringfence_consumer")" || fail "ringfence_consumer exited $?"
echo "$out"
[[ "$out" == *"of cf291-2024-07-19.1: PAUSED at stage 0; host-1: not yet"* ]] ||
  fail "ringfence_consumer printed something else"

if [ "$service" = 1 ]; then
  # The installed ringfenced and ringctl, and the consumer's own gRPC client.
  "$PREFIX/bin/ringfenced" --listen=127.0.0.1:0 --port_file="$WORK/port" \
    --http_listen=127.0.0.1:0 --http_port_file="$WORK/http_port" \
    --data_dir="$WORK/data" 2>"$WORK/ringfenced.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    [ -s "$WORK/port" ] && [ -s "$WORK/http_port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$WORK/port" ] || { cat "$WORK/ringfenced.log"; fail "ringfenced did not start"; }
  SERVER="127.0.0.1:$(cat "$WORK/port")"
  "$PREFIX/bin/ringctl" --server="$SERVER" release create --id=installed-1 \
    --content-type=channel-file/291 \
    --payload=examples/content/cf291-0718-good.textproto ||
    fail "ringctl release create"
  out="$("$WORK/consumer/ringfence_list_releases" "$SERVER")" ||
    fail "ringfence_list_releases exited $?"
  echo "$out"
  [ "$out" = "$(printf '1 releases\ninstalled-1 channel-file/291')" ] ||
    fail "ringfence_list_releases printed something else"
  out="$("$WORK/consumer/ringfence_agent_c_consumer")" ||
    fail "ringfence_agent_c_consumer exited $?"
  echo "$out"
  [[ "$out" == "agent_c: refused without a state directory: "?* ]] ||
    fail "ringfence_agent_c_consumer printed something else"
  # The C++ agent over gRPC and over the HTTP listener.
  out="$("$WORK/consumer/ringfence_agent_consumer" "$SERVER" "$WORK/agent-grpc")" ||
    fail "ringfence_agent_consumer (gRPC) exited $?"
  echo "$out"
  [ "$out" = 'agent: tick OK; running ""; 0 events pending' ] ||
    fail "ringfence_agent_consumer (gRPC) printed something else"
  out="$("$WORK/consumer/ringfence_agent_consumer" "http://127.0.0.1:$(cat "$WORK/http_port")" \
    "$WORK/agent-http")" || fail "ringfence_agent_consumer (HTTP) exited $?"
  echo "$out"
  [ "$out" = 'agent: tick OK; running ""; 0 events pending' ] ||
    fail "ringfence_agent_consumer (HTTP) printed something else"
  kill -TERM "$SERVER_PID"
  rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  [ "$rc" = 0 ] || { cat "$WORK/ringfenced.log"; fail "ringfenced exited $rc on SIGTERM"; }
fi
echo "test-install: OK"
