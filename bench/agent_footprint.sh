#!/usr/bin/env bash
# The footprint of a real ringfence-agent process against a real ringfenced,
# with a release applied and healthy, polling and heartbeating every POLL_S
# seconds for DURATION_S seconds. Prints one JSON object:
#   cpu_ms, cpu_ms_per_poll, cpu_ms_per_s: CPU time of all the agent's
#     threads (schedstat, nanoseconds) over the run, per poll interval and
#     per second; cpu_s_from_ticks is the same from /proc/PID/stat (10 ms)
#   context_switches_per_s: how often its threads wake up
#   minor_faults_per_poll, major_faults_per_poll: page faults of the process
#     (/proc/PID/stat) per poll interval: pages of its binary and libraries
#     (or its memory) it touched again after they left its resident set
#   vm_rss_kib (VmRSS at the end; vm_hwm_kib its peak), rss_anon_kib (its
#     own memory), rss_file_kib (pages of its binary and shared libraries it
#     touched), pss_kib (shared pages divided among the processes sharing
#     them), private_kib / shared_kib (smaps_rollup: pages only it maps /
#     pages other processes map too): what one more agent costs is about
#     private_kib
#   threads (at the end and at the start of the window)
#   syscalls_per_poll: with STRACE_S, strace -c -f for STRACE_S seconds
#     after the window (its summary goes to stderr)
# TLS=1 serves TLS (every new connection a handshake). TRANSPORT=http runs
# the agent over ringfenced's HTTP listener (--server=http(s)://...,
# HttpAgentTransport) instead of gRPC (TRANSPORT=grpc, the default).
#
#   bench/agent_footprint.sh > bench/results/agent-footprint-$(git rev-parse --short HEAD).json
#   BIN=build/bin DURATION_S=120 POLL_S=1 bench/agent_footprint.sh
#   POLL_S=60 DURATION_S=600 STRACE_S=120 TLS=1 bench/agent_footprint.sh
#   TRANSPORT=http POLL_S=60 DURATION_S=300 TLS=1 bench/agent_footprint.sh
#
# CPU per poll depends on the interval: an agent whose next wakeup is under
# 20 s away keeps its connection (gRPC channel or HTTP connection) open,
# one that sleeps longer closes it (service/agent/main.cc, AgentServerTransport::CloseConnection).
# Measure at the interval deployed (60 s by default).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-build/bin}"
DURATION_S="${DURATION_S:-60}"
POLL_S="${POLL_S:-1}"
TRANSPORT="${TRANSPORT:-grpc}"
case "$TRANSPORT" in
  grpc | http) ;;
  *) echo "TRANSPORT must be grpc or http, not $TRANSPORT" >&2; exit 2 ;;
esac
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
WORK="$(mktemp -d /tmp/ringfence-footprint.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# TLS=1: the server speaks TLS (a throwaway self-signed certificate), as a
# real fleet's would; every new connection then costs a TLS handshake.
SERVER_TLS=()
CLIENT_TLS=()
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/server.key" -out "$WORK/server.pem" 2> /dev/null
  SERVER_TLS=(--tls_cert="$WORK/server.pem" --tls_key="$WORK/server.key")
  CLIENT_TLS=(--tls-ca="$WORK/server.pem" --tls-server-name=localhost)
fi
# The HTTP listener (HTTPS with TLS=1, same certificate) writes its port
# before the gRPC one.
"$BIN/ringfenced" --listen=127.0.0.1:0 --port_file="$WORK/port" \
  --http_listen=127.0.0.1:0 --http_port_file="$WORK/http_port" \
  --data_dir="$WORK/data" --tick_interval=0.2s "${SERVER_TLS[@]}" \
  2> "$WORK/ringfenced.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
SERVER="127.0.0.1:$(cat "$WORK/port")"
AGENT_SERVER="$SERVER"
if [ "$TRANSPORT" = http ]; then
  scheme=http
  [ "${TLS:-0}" = 1 ] && scheme=https
  AGENT_SERVER="$scheme://127.0.0.1:$(cat "$WORK/http_port")"
fi
CTL=("$BIN/ringctl" --server="$SERVER" "${CLIENT_TLS[@]}")
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

"$BIN/ringfence-agent" run --server="$AGENT_SERVER" "${CLIENT_TLS[@]}" \
  --host-id=footprint-host \
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
# Page faults of the process (all its threads): minor, major.
minflt() { awk '{print $10}' "/proc/$AGENT/stat"; }
majflt() { awk '{print $12}' "/proc/$AGENT/stat"; }
# Nanoseconds on a CPU, summed over the agent's threads (schedstat's first
# field): /proc/PID/stat counts in clock ticks (10 ms), too coarse for a
# process that should spend well under a millisecond a minute idle.
cpu_ns() { cat /proc/"$AGENT"/task/*/schedstat | awk '{s += $1} END {print s}'; }
# Context switches, summed over the threads: each one is a thread waking up.
switches() {
  cat /proc/"$AGENT"/task/*/status |
    awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s}'
}
threads_start="$(awk '/^Threads/ {print $2}' "/proc/$AGENT/status")"
start_ticks="$(cpu_ticks)"
start_ns="$(cpu_ns)"
start_sw="$(switches)"
start_minflt="$(minflt)"
start_majflt="$(majflt)"
sleep "$DURATION_S"
end_ns="$(cpu_ns)"
end_ticks="$(cpu_ticks)"
end_sw="$(switches)"
end_minflt="$(minflt)"
end_majflt="$(majflt)"
rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT/status")"
hwm_kb="$(awk '/^VmHWM/ {print $2}' "/proc/$AGENT/status")"
anon_kb="$(awk '/^RssAnon/ {print $2}' "/proc/$AGENT/status")"
file_kb="$(awk '/^RssFile/ {print $2}' "/proc/$AGENT/status")"
rollup() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$AGENT/smaps_rollup"; }
pss_kb="$(rollup Pss)"
private_kb=$(($(rollup Private_Clean) + $(rollup Private_Dirty)))
shared_kb=$(($(rollup Shared_Clean) + $(rollup Shared_Dirty)))
threads="$(awk '/^Threads/ {print $2}' "/proc/$AGENT/status")"
pending="$(awk '/^spool_pending/ {print $2}' "$WORK/agent/status")"
polls="$(awk -v d="$DURATION_S" -v p="$POLL_S" 'BEGIN {print d / p}')"
cpu_s="$(awk -v t=$((end_ticks - start_ticks)) -v hz="$TCK" 'BEGIN {print t / hz}')"
cpu_ms="$(awk -v n=$((end_ns - start_ns)) 'BEGIN {printf "%.3f", n / 1e6}')"
per() { awk -v x="$1" -v n="$2" 'BEGIN {printf "%.3f", x / n}'; }
# Optionally the system calls of the next STRACE_S seconds (strace -c -f
# slows the process down, so it runs after the CPU window).
syscalls=null
syscalls_per_poll=null
if [ -n "${STRACE_S:-}" ] && command -v strace > /dev/null; then
  timeout -s INT "$STRACE_S" strace -c -f -p "$AGENT" -o "$WORK/strace" \
    2> /dev/null || true
  # calls: the fourth column (the errors column after it may be empty).
  syscalls="$(awk '$NF == "total" {print $4}' "$WORK/strace")"
  syscalls_per_poll="$(per "$syscalls" "$(per "$STRACE_S" "$POLL_S")")"
  sed 's/^/strace: /' "$WORK/strace" >&2
fi
cat <<EOF
{
  "commit": "$COMMIT",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "duration_s": $DURATION_S,
  "poll_interval_s": $POLL_S,
  "tls": ${TLS:-0},
  "transport": "$TRANSPORT",
  "polls_approx": $polls,
  "cpu_ms": $cpu_ms,
  "cpu_ms_per_poll": $(per "$cpu_ms" "$polls"),
  "cpu_ms_per_s": $(per "$cpu_ms" "$DURATION_S"),
  "cpu_s_from_ticks": $cpu_s,
  "context_switches_per_s": $(per $((end_sw - start_sw)) "$DURATION_S"),
  "minor_faults_per_poll": $(per $((end_minflt - start_minflt)) "$polls"),
  "major_faults_per_poll": $(per $((end_majflt - start_majflt)) "$polls"),
  "vm_rss_kib": $rss_kb,
  "vm_hwm_kib": $hwm_kb,
  "rss_anon_kib": $anon_kb,
  "rss_file_kib": $file_kb,
  "pss_kib": $pss_kb,
  "private_kib": $private_kb,
  "shared_kib": $shared_kb,
  "threads": $threads,
  "threads_at_start": $threads_start,
  "strace_s": ${STRACE_S:-null},
  "syscalls": $syscalls,
  "syscalls_per_poll": $syscalls_per_poll,
  "spool_pending_at_end": ${pending:-null}
}
EOF
# A regression guard for whoever runs this: MAX_CPU_MS_PER_POLL,
# MAX_RSS_KIB and MAX_PSS_KIB (unset: no check) fail the run when exceeded,
# e.g.
#   POLL_S=60 DURATION_S=300 MAX_CPU_MS_PER_POLL=5 MAX_RSS_KIB=16000 \
#     bench/agent_footprint.sh
over() { awk -v x="$1" -v max="$2" 'BEGIN {exit !(x > max)}'; }
failed=0
cpu_ms_per_poll="$(per "$cpu_ms" "$polls")"
if [ -n "${MAX_CPU_MS_PER_POLL:-}" ] && over "$cpu_ms_per_poll" "$MAX_CPU_MS_PER_POLL"; then
  echo "cpu_ms_per_poll $cpu_ms_per_poll > MAX_CPU_MS_PER_POLL $MAX_CPU_MS_PER_POLL" >&2
  failed=1
fi
if [ -n "${MAX_RSS_KIB:-}" ] && over "$rss_kb" "$MAX_RSS_KIB"; then
  echo "vm_rss_kib $rss_kb > MAX_RSS_KIB $MAX_RSS_KIB" >&2
  failed=1
fi
if [ -n "${MAX_PSS_KIB:-}" ] && over "$pss_kb" "$MAX_PSS_KIB"; then
  echo "pss_kib $pss_kb > MAX_PSS_KIB $MAX_PSS_KIB" >&2
  failed=1
fi
exit "$failed"
