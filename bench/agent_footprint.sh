#!/usr/bin/env bash
# The footprint of a real ringfence-agent process against a real ringfenced:
# resident memory (VmRSS at the end, VmHWM = its peak; RssAnon is the
# process's own memory, RssFile the pages of its binary and shared libraries
# it touched, PSS counts shared pages divided among the processes sharing
# them) and CPU time per poll
# (user + system CPU of the agent process over the run, divided by the polls
# it made), with a release applied and healthy, polling and heartbeating
# every POLL_S seconds for DURATION_S seconds. Prints one JSON object.
#
#   bench/agent_footprint.sh > bench/results/agent-footprint-$(git rev-parse --short HEAD).json
#   BIN=build/bin DURATION_S=120 POLL_S=1 bench/agent_footprint.sh
#
# Polling every second instead of every minute makes the same work happen
# sixty times as often; CPU per poll is what it is either way.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-build/bin}"
DURATION_S="${DURATION_S:-60}"
POLL_S="${POLL_S:-1}"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
WORK="$(mktemp -d /tmp/ringfence-footprint.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/ringfenced" --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --data_dir="$WORK/data" --tick_interval=0.2s 2> "$WORK/ringfenced.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
SERVER="127.0.0.1:$(cat "$WORK/port")"
CTL=("$BIN/ringctl" --server="$SERVER")
printf 'channel file 291, 20 fields\n' > "$WORK/payload"
"${CTL[@]}" release create --id=footprint-1 --content-type=channel-file/291 \
  --payload="$WORK/payload" --fetch-url="file://$WORK/payload" > /dev/null
"${CTL[@]}" rollout start --id=footprint-1 --release=footprint-1 --no-baseline \
  --plan=examples/plans/demo.textproto --reason="agent footprint" > /dev/null
# Promote to completion so that the release is assigned to the host.
for _ in $(seq 8); do
  "${CTL[@]}" rollout promote footprint-1 --reason="footprint run" \
    > /dev/null 2>&1 || true
done

"$BIN/ringfence-agent" run --server="$SERVER" --host-id=footprint-host \
  --content-type=channel-file/291 --state-dir="$WORK/agent" --allow-unsigned \
  --poll-interval="$POLL_S" --heartbeat-interval="$POLL_S" \
  --load-command='cp "$1" "$(dirname "$1")/../loaded"' \
  2> "$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
# Wait until the release is loaded and healthy, then measure from there.
# Health comes one to two heartbeat intervals after the load.
deadline=$((SECONDS + 3 * ${POLL_S%.*} + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  grep -q '^last_good footprint-1' "$WORK/agent/status" 2>/dev/null && break
  sleep 0.1
done
if ! grep -q '^last_good footprint-1' "$WORK/agent/status" 2>/dev/null; then
  echo "the agent did not apply footprint-1:" >&2
  cat "$WORK/agent.log" "$WORK/agent/status" >&2 || true
  exit 1
fi
TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
start_ticks="$(cpu_ticks)"
sleep "$DURATION_S"
end_ticks="$(cpu_ticks)"
rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT/status")"
hwm_kb="$(awk '/^VmHWM/ {print $2}' "/proc/$AGENT/status")"
anon_kb="$(awk '/^RssAnon/ {print $2}' "/proc/$AGENT/status")"
file_kb="$(awk '/^RssFile/ {print $2}' "/proc/$AGENT/status")"
pss_kb="$(awk '/^Pss:/ {print $2}' "/proc/$AGENT/smaps_rollup" 2>/dev/null || echo null)"
threads="$(awk '/^Threads/ {print $2}' "/proc/$AGENT/status")"
pending="$(awk '/^spool_pending/ {print $2}' "$WORK/agent/status")"
polls="$(awk -v d="$DURATION_S" -v p="$POLL_S" 'BEGIN {print d / p}')"
cpu_s="$(awk -v t=$((end_ticks - start_ticks)) -v hz="$TCK" 'BEGIN {print t / hz}')"
cpu_ms_per_poll="$(awk -v c="$cpu_s" -v n="$polls" 'BEGIN {printf "%.3f", 1000 * c / n}')"
cat <<EOF
{
  "commit": "$COMMIT",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "duration_s": $DURATION_S,
  "poll_interval_s": $POLL_S,
  "polls_approx": $polls,
  "cpu_s": $cpu_s,
  "cpu_ms_per_poll": $cpu_ms_per_poll,
  "clock_ticks_per_s": $TCK,
  "vm_rss_kib": $rss_kb,
  "vm_hwm_kib": $hwm_kb,
  "rss_anon_kib": $anon_kb,
  "rss_file_kib": $file_kb,
  "pss_kib": ${pss_kb:-null},
  "cpu_ms_per_s": $(awk -v c="$cpu_s" -v d="$DURATION_S" 'BEGIN {printf "%.3f", 1000 * c / d}'),
  "threads": $threads,
  "spool_pending_at_end": ${pending:-null}
}
EOF
