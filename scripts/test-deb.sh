#!/usr/bin/env bash
# The Debian packages, built and installed for real (as root: it installs and
# purges packages and makes the user ringfence). cpack builds ringfence
# (ringfenced, ringctl, the systemd unit, /etc/default/ringfenced) and
# ringfence-dev (the library's CMake package); apt-get installs both. Then
# the installed ringfenced runs as the user ringfence with the default
# config's flags and must serve: ringctl creates and lists a release, and
# examples/consumer, built against ringfence-dev, lists it over gRPC. It is
# stopped with SIGTERM; where systemd runs (/run/systemd/system) the unit is
# started and stopped as well, and `systemd-analyze verify` checks the unit.
# Finally both packages are purged. Whatever it made is removed on failure
# too; it refuses to run over an existing /var/lib/ringfence that holds data
# or a server already on the default port.
#   scripts/test-deb.sh                    # packages build/ (built if needed)
#   BUILD_DIR=build-pkg scripts/test-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "test-deb: FAIL: $*" >&2
  exit 1
}
say() { echo "test-deb: $*"; }
[ "$(id -u)" -eq 0 ] || fail "run as root: it installs and purges packages"
export DEBIAN_FRONTEND=noninteractive

BUILD_DIR="${BUILD_DIR:-build}"
STATE=/var/lib/ringfence
LISTEN_PORT=7443  # the default config's --listen

# ---- What is here before, so that cleanup removes only what this made ----
if [ -d "$STATE" ] && [ -n "$(ls -A "$STATE")" ]; then
  fail "$STATE exists and holds data; this test would write to it"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$LISTEN_PORT") 2>/dev/null; then
  fail "something already listens on 127.0.0.1:$LISTEN_PORT (the default config's --listen)"
fi
user_existed=0
getent passwd ringfence >/dev/null && user_existed=1
state_existed=0
[ -d "$STATE" ] && state_existed=1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ringfence-deb.XXXXXX")"
SERVER_PID=""
installed=0
systemd_started=0
cleanup() {
  rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$systemd_started" = 1 ]; then systemctl stop ringfenced.service || true; fi
  if [ "$installed" = 1 ]; then
    apt-get purge -y -qq ringfence ringfence-dev >/dev/null 2>&1 || true
  fi
  # Purge keeps the store and the user (packaging/deb/postrm): this test's.
  if [ "$state_existed" = 0 ]; then rm -rf "$STATE"; fi
  if [ "$user_existed" = 0 ] && getent passwd ringfence >/dev/null; then
    deluser --system --quiet ringfence >/dev/null 2>&1 || true
    if getent group ringfence >/dev/null; then
      delgroup --system --quiet ringfence >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$WORK"
  if [ "$rc" -ne 0 ]; then echo "test-deb: failed (exit $rc), cleaned up" >&2; fi
}
trap cleanup EXIT

# ---- Build the packages --------------------------------------------------
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
OUT="$(cd "$BUILD_DIR" && pwd)/deb"
rm -rf "$OUT"
say "cpack -G DEB -> $OUT"
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$OUT" >"$WORK/cpack.log" ||
  { cat "$WORK/cpack.log"; fail "cpack"; }
shopt -s nullglob
debs=("$OUT"/ringfence_*.deb)
devs=("$OUT"/ringfence-dev_*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ "${#devs[@]}" -ne 1 ]; then
  fail "cpack made $(find "$OUT" -maxdepth 1 -name '*.deb' -printf '%f '), not" \
    "one ringfence_*.deb and one ringfence-dev_*.deb"
fi
for f in ./usr/bin/ringfenced ./usr/bin/ringctl ./usr/bin/ringfence-agent \
  ./etc/default/ringfenced \
  ./usr/lib/systemd/system/ringfenced.service; do
  dpkg-deb -c "${debs[0]}" | awk '{print $6}' | grep -qxF "$f" ||
    fail "${debs[0]} has no $f"
done
depends="$(dpkg-deb -f "${debs[0]}" Depends)"
say "${debs[0]}: Depends: $depends"
for d in adduser libgrpc++ libprotobuf libabsl libsqlite3 libssl; do
  [[ "$depends" == *"$d"* ]] || fail "${debs[0]} does not depend on $d"
done
dpkg-deb -I "${debs[0]}" conffiles | grep -qxF /etc/default/ringfenced ||
  fail "/etc/default/ringfenced is not a conffile"

# ---- Install -------------------------------------------------------------
say "apt-get install ${debs[0]} ${devs[0]}"
installed=1
apt-get install -y -qq "${debs[0]}" "${devs[0]}" >"$WORK/apt.log" 2>&1 ||
  { cat "$WORK/apt.log"; fail "apt-get install"; }
getent passwd ringfence >/dev/null || fail "postinst made no user ringfence"
[ "$(stat -c %U:%G "$STATE")" = ringfence:ringfence ] ||
  fail "$STATE is $(stat -c %U:%G "$STATE"), not ringfence:ringfence"
UNIT=/usr/lib/systemd/system/ringfenced.service
# shellcheck disable=SC2016
grep -qxF 'ExecStart=/usr/bin/ringfenced $RINGFENCED_ARGS' "$UNIT" ||
  fail "$UNIT does not start /usr/bin/ringfenced"
grep -qxF 'EnvironmentFile=/etc/default/ringfenced' "$UNIT" ||
  fail "$UNIT does not read /etc/default/ringfenced"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
  say "systemd-analyze verify $UNIT: OK"
else
  say "no systemd-analyze here: the unit is not verified"
fi

# ---- The installed ringfenced, as the user ringfence, default flags -----
# shellcheck disable=SC1091
. /etc/default/ringfenced
say "ringfenced $RINGFENCED_ARGS (as ringfence)"
# setpriv execs: $! is ringfenced itself, which gets the SIGTERM below.
# shellcheck disable=SC2086
(cd "$STATE" && exec setpriv --reuid=ringfence --regid=ringfence \
  --init-groups -- /usr/bin/ringfenced $RINGFENCED_ARGS) 2>"$WORK/ringfenced.log" &
SERVER_PID=$!
CTL=(/usr/bin/ringctl --rpc-timeout=5s)
wait_serving() {
  for _ in $(seq 100); do
    "${CTL[@]}" release list >/dev/null 2>&1 && return 0
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  return 1
}
wait_serving || { cat "$WORK/ringfenced.log"; fail "the installed ringfenced does not serve"; }
"${CTL[@]}" release create --id=deb-test-1 --content-type=channel-file/291 \
  --payload=examples/content/cf291-0718-good.textproto >/dev/null ||
  fail "ringctl release create"
"${CTL[@]}" release list | grep -q deb-test-1 || fail "ringctl release list"
others="$(find "$STATE" ! -user ringfence)"
[ -z "$others" ] || fail "files in $STATE not owned by ringfence: $others"

# ringfence-dev: the consumer project, built against /usr.
say "building examples/consumer against the installed ringfence-dev"
if ! { cmake -S examples/consumer -B "$WORK/consumer" -G Ninja &&
  cmake --build "$WORK/consumer" -j "$(nproc)"; } >"$WORK/consumer.log" 2>&1; then
  cat "$WORK/consumer.log"
  fail "building examples/consumer on ringfence-dev"
fi
grep -q "ringfence_DIR.*/usr/lib" "$WORK/consumer/CMakeCache.txt" ||
  fail "examples/consumer did not find the installed ringfence: $(grep ringfence_DIR "$WORK/consumer/CMakeCache.txt")"
"$WORK/consumer/ringfence_consumer" || fail "ringfence_consumer"
out="$("$WORK/consumer/ringfence_list_releases")" || fail "ringfence_list_releases"
[[ "$out" == *"deb-test-1 channel-file/291"* ]] ||
  fail "ringfence_list_releases printed: $out"

kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
[ "$rc" -eq 0 ] || { cat "$WORK/ringfenced.log"; fail "ringfenced exited $rc on SIGTERM"; }
grep -q "stopped" "$WORK/ringfenced.log" || fail "ringfenced did not log its stop"
say "ringfenced served as ringfence and stopped on SIGTERM"

# ---- systemd, where it runs ----------------------------------------------
if [ -d /run/systemd/system ]; then
  say "systemctl start ringfenced"
  systemd_started=1
  systemctl start ringfenced.service
  wait_serving || { journalctl -u ringfenced --no-pager | tail -30; fail "ringfenced.service does not serve"; }
  "${CTL[@]}" release list | grep -q deb-test-1 ||
    fail "ringfenced.service does not serve the store in $STATE"
  [ "$(systemctl show -p User --value ringfenced.service)" = ringfence ] ||
    fail "ringfenced.service does not run as ringfence"
  systemctl stop ringfenced.service
  systemd_started=0
  say "ringfenced.service started, served and stopped"
else
  say "systemd is not running here (no /run/systemd/system): systemctl start not tried"
fi

# ---- Purge ----------------------------------------------------------------
say "apt-get purge ringfence ringfence-dev"
apt-get purge -y -qq ringfence ringfence-dev >"$WORK/apt.log" 2>&1 ||
  { cat "$WORK/apt.log"; fail "apt-get purge"; }
installed=0
for f in /usr/bin/ringfenced /usr/bin/ringctl /etc/default/ringfenced "$UNIT" \
  /usr/include/ringfence/controller.h; do
  [ ! -e "$f" ] || fail "$f is still there after the purge"
done
dpkg-query -W ringfence >/dev/null 2>&1 && fail "ringfence is still known to dpkg"
say "OK"
