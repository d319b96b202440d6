#!/usr/bin/env bash
# The detection benchmark: every shipped scenario, ringfence vs the oracle
# SPRT vs the threshold rule, with the detection plan. Writes one JSON file
# per scenario into ${OUT:-bench/results} and prints a table.
#   bench/run_detection.sh                # full run (~15 min on 2 cores)
#   SEEDS=5 GOOD_SEEDS=50 bench/run_detection.sh   # quick look
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=${SIM:-build/bin/ringfence_simulate}
PLAN=${PLAN:-bench/plans/detection.textproto}
OUT=${OUT:-bench/results}
SEEDS=${SEEDS:-20}
BIG_SEEDS=${BIG_SEEDS:-3}
GOOD_SEEDS=${GOOD_SEEDS:-1000}
mkdir -p "$OUT"

run() {  # scenario seeds [deciders]
  local name=$1 seeds=$2 deciders=${3:-ringfence,oracle,threshold_rule}
  echo "== $name ($seeds seeds: $deciders)" >&2
  /usr/bin/time -f "   %e s wall, %M KB max RSS" \
    "$SIM" --plan="$PLAN" --scenario="bench/scenarios/$name.textproto" \
    --seeds="$seeds" --deciders="$deciders" --json > "$OUT/$name.json"
}

run boot-loop-total "$BIG_SEEDS"
run crash-rate-10x "$SEEDS"
run crash-rate-2x "$SEEDS"
run crash-on-apply-5pct "$SEEDS"
run good-update "$GOOD_SEEDS" ringfence
OUT_GOOD_BASE="$OUT/good-update-baselines.json"
"$SIM" --plan="$PLAN" --scenario=bench/scenarios/good-update.textproto \
  --seeds=$((GOOD_SEEDS / 10)) --deciders=oracle,threshold_rule --json > "$OUT_GOOD_BASE"
for f in "$OUT"/*.json; do echo "$(basename "$f"): $(cat "$f")"; done
