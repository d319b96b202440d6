#!/usr/bin/env bash
# The demo: ringfenced on its SQLite default with content rules, a channel
# file that reads past the agents' inputs rejected at publication, then an
# emulated fleet of 200 hosts talking gRPC, a good release rolled out to
# completion and a boot-looping one halted in its first stage, both followed
# with `ringctl rollout watch`.
# Expects a build in build/ (scripts/run.sh does that first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
WORK="$(mktemp -d /tmp/ringfence-demo.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting ringfenced (data in $WORK/data)"
"$BIN/ringfenced" --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --data_dir="$WORK/data" --tick_interval=0.2s \
  --content_rules=examples/content/rules.textproto 2> "$WORK/ringfenced.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
SERVER="127.0.0.1:$(cat "$WORK/port")"
CTL=("$BIN/ringctl" --server="$SERVER")
echo "listening on $SERVER"

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
