#!/usr/bin/env bash
# The demo: ringfenced on its SQLite default with content rules, a channel
# file that reads past the agents' inputs rejected at publication, then an
# emulated fleet of 200 hosts talking gRPC, a good release rolled out to
# completion and a boot-looping one halted in its first stage, both followed
# with `ringctl rollout watch`; then 24 real ringfence-agent processes: a good
# release to all of them and a release whose load kills the agent, halted in
# dogfood while the hurt agents fall back on their own.
# Expects a build in build/ (scripts/run.sh does that first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
WORK="$(mktemp -d /tmp/ringfence-demo.XXXXXX)"
PIDS=()
cleanup() {
  touch "$WORK/stop-agents"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f -- "--config=$WORK/agent-" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting ringfenced (data in $WORK/data)"
# No tokens: ringfenced serves gRPC and HTTP without them only on loopback.
"$BIN/ringfenced" --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --http_listen=127.0.0.1:0 --http_port_file="$WORK/http_port" \
  --data_dir="$WORK/data" --tick_interval=0.2s \
  --content_rules=examples/content/rules.textproto 2> "$WORK/ringfenced.log" &
PIDS+=($!)
# The HTTP port file is written before the gRPC one.
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
SERVER="127.0.0.1:$(cat "$WORK/port")"
CTL=("$BIN/ringctl" --server="$SERVER")
echo "listening on $SERVER"
echo "dashboard: http://127.0.0.1:$(cat "$WORK/http_port")/ (no token on this demo server: leave the token field empty)"

C=examples/content
AGENTS=(--min-agent-version=7.11 --max-agent-version=7.12)
say "publishing channel-file/291 rev 0719: it has a criterion on field 21, and agents 7.11 supply 20 inputs"
set +e
"${CTL[@]}" release create --id=cf291-0719 --content-type=channel-file/291 \
  --payload=$C/cf291-0719-field21.textproto "${AGENTS[@]}" 2>&1 | head -4
echo "exit code ${PIPESTATUS[0]}: rejected before any host could be assigned it"
set -e

say "publishing two releases that pass every content check"
"${CTL[@]}" release create --id=cf291-good --content-type=channel-file/291 \
  --payload=$C/cf291-0718-good.textproto "${AGENTS[@]}"
"${CTL[@]}" release create --id=cf291-bootloop --content-type=channel-file/291 \
  --payload=$C/cf291-0720-crashes.textproto "${AGENTS[@]}"

say "starting 200 emulated hosts (10 internal dogfood hosts)"
"$BIN/ringfence_demo_fleet" --target="$SERVER" --hosts=200 --dogfood_hosts=10 \
  --boot_loop=cf291-bootloop > "$WORK/fleet.log" 2>&1 &
PIDS+=($!)
sleep 1

say "rollout 1: a good release — dogfood, 10 %, then the fleet"
"${CTL[@]}" rollout start --id=demo-good --release=cf291-good --no-baseline \
  --plan=examples/plans/demo.textproto --reason="weekly content update"
"${CTL[@]}" rollout watch demo-good || true
echo "CI asks: is cf291-good cleared for the whole fleet?"
set +e; "${CTL[@]}" gate check --release=cf291-good; echo "exit code $?"; set -e

say "rollout 2: a content update that crashes every host that loads it"
"${CTL[@]}" rollout start --id=demo-bootloop --release=cf291-bootloop \
  --plan=examples/plans/demo.textproto --reason="channel file 291, 2024-07-19 style"
"${CTL[@]}" rollout watch demo-bootloop || true
echo "CI asks: is cf291-bootloop cleared?"
set +e; "${CTL[@]}" gate check --release=cf291-bootloop; echo "exit code $?"; set -e

sleep 2
say "outcome"
"${CTL[@]}" rollout status demo-bootloop
echo
grep -E "fleet:" "$WORK/fleet.log" | tail -1 || true
echo "Hosts that loaded the bad release: see 'exposed' above; every other host"
echo "was told to stay on cf291-good (assignments reverted at the halt)."

# ---- Real agents ----------------------------------------------------------
AGENTS_N="${RINGFENCE_DEMO_AGENTS:-24}"
say "starting $AGENTS_N real ringfence-agent processes (4 dogfood) for channel-file/292"
printf 'channel file 292, 20 fields\n' > "$WORK/cf292-good.bin"
printf 'channel file 292, reads field 21\n' > "$WORK/cf292-bad.bin"
for r in good bad; do
  "${CTL[@]}" release create --id=cf292-$r --content-type=channel-file/292 \
    --payload="$WORK/cf292-$r.bin" --fetch-url="file://$WORK/cf292-$r.bin" \
    > /dev/null
done
# The load command "boots" the content; the bad release kills the agent, as
# a channel file that crashes its reader kills the host. Each agent runs
# under a loop that restarts it 300 ms after it died: a reboot.
LOAD='d="$(dirname "$1")/.."; echo "$2" >> "$d/loads"; '
LOAD+='if [ "$2" = cf292-bad ]; then kill -9 $PPID; sleep 5; exit 1; fi; '
LOAD+='echo "$2" > "$d/running"'
for i in $(seq 0 $((AGENTS_N - 1))); do
  {
    echo "server: \"$SERVER\""
    echo "host_id: \"agent-$i\""
    echo "content_type: \"channel-file/292\""
    echo "state_dir: \"$WORK/agent-$i\""
    echo "allow_unsigned: true"
    echo "poll_interval_s: 0.5"
    echo "heartbeat_interval_s: 0.5"
    [ "$i" -lt 4 ] && echo 'labels: "ring:dogfood"'
  } > "$WORK/agent-$i.textproto"
  (
    while [ ! -e "$WORK/stop-agents" ]; do
      build/bin/ringfence-agent run --config="$WORK/agent-$i.textproto" \
        --load-command="$LOAD" 2>> "$WORK/agent-$i.log" || true
      sleep 0.3
    done
  ) 2> /dev/null &
  PIDS+=($!)
done
running() {
  local n=0
  for i in $(seq 0 $((AGENTS_N - 1))); do
    [ "$(cat "$WORK/agent-$i/running" 2>/dev/null)" = "$1" ] && n=$((n + 1))
  done
  echo "$n"
}

say "rollout 3: a good release to the real agents"
"${CTL[@]}" rollout start --id=agents-good --release=cf292-good --no-baseline \
  --plan=examples/plans/agents-demo.textproto --reason="weekly content update"
"${CTL[@]}" rollout watch agents-good || true
for _ in $(seq 100); do [ "$(running cf292-good)" = "$AGENTS_N" ] && break; sleep 0.1; done
echo "$(running cf292-good) of $AGENTS_N agents run cf292-good"

say "rollout 4: a release whose load kills the agent (a boot loop on real processes)"
"${CTL[@]}" rollout start --id=agents-bootloop --release=cf292-bad \
  --plan=examples/plans/agents-demo.textproto \
  --reason="channel file 292, 2024-07-19 style"
"${CTL[@]}" rollout watch agents-bootloop || true
for _ in $(seq 150); do [ "$(running cf292-good)" = "$AGENTS_N" ] && break; sleep 0.1; done
hurt=0
for i in $(seq 0 $((AGENTS_N - 1))); do
  if grep -qx cf292-bad "$WORK/agent-$i/loads" 2>/dev/null; then
    hurt=$((hurt + 1))
    echo "agent-$i loaded cf292-bad $(grep -cx cf292-bad "$WORK/agent-$i/loads") time(s), now runs $(cat "$WORK/agent-$i/running")"
  fi
done
echo "$hurt of $AGENTS_N agents ever loaded cf292-bad; $(running cf292-good) run cf292-good now."
echo "What agent-0 says (ringfence-agent status):"
build/bin/ringfence-agent status --state-dir="$WORK/agent-0" | sed 's/^/  /'
touch "$WORK/stop-agents"
# Leave the server up for a look at the dashboard when someone is watching.
if [ -t 0 ]; then
  echo
  echo "dashboard: http://127.0.0.1:$(cat "$WORK/http_port")/ — press Enter to stop the server"
  read -r _
fi
