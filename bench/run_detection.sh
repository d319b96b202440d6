#!/usr/bin/env bash
# The detection benchmark: every shipped scenario (bench/scenarios/), each
# with ringfence, the oracle and the threshold rule on the same seeds, with
# the detection plan (or the scenario's own, bench/scenarios/plans/NAME).
# Writes, per scenario, ${OUT}/NAME.json (the summary of every decider, with
# the seeds, plan and command) and ${OUT}/NAME.runs.jsonl (one line per run:
# decider, seed, outcome, halt rule and reason, stage, times, exposure,
# hurt), then prints the markdown table (the --table mode below).
#
#   bench/run_detection.sh                      # every scenario
#   bench/run_detection.sh crash-rate-10x hang  # some of them
#   SEEDS=5 GOOD_SEEDS=50 BIG_SEEDS=1 bench/run_detection.sh   # quick look
#   bench/run_detection.sh --table [DIR]        # the table from DIR's JSON
#
# Seeds: SEEDS (default 20) for scenarios whose update hurts hosts,
# GOOD_SEEDS (default 300) for those where every halt is a false halt (the
# false-halt rate needs many runs: 300 give a 95 % interval of about
# +-1 % around 1 %), BIG_SEEDS (default 3) for the 8.5M-host boot loop;
# SEED_OFFSET (default 0) shifts them all (seeds OFFSET+1..OFFSET+N).
# Cost on 2 cores, roughly: 10k-host scenarios ~0.7 s per run, 100k-host
# ones 2-10 s per run, the 8.5M-host one several minutes per run and 4 GB
# (its 24 h horizon): hours for everything at the defaults. THREADS
# (default 2) runs in parallel; the binary is SIM (default
# build/bin/ringfence_simulate).
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=${SIM:-build/bin/ringfence_simulate}
PLAN=${PLAN:-bench/plans/detection.textproto}
OUT=${OUT:-bench/results/detection}
SEEDS=${SEEDS:-20}
GOOD_SEEDS=${GOOD_SEEDS:-300}
BIG_SEEDS=${BIG_SEEDS:-3}
SEED_OFFSET=${SEED_OFFSET:-0}
THREADS=${THREADS:-2}
DECIDERS=ringfence,oracle,threshold_rule

# Scenarios whose update cannot hurt any host (every halt is a false halt).
is_good() {
  case "$1" in
    *-good | good-update | chronic-crashers-* | restarts-good-update | \
      improvement-* | effect-on-absent-version | tiny-fleet-*) return 0 ;;
    *) return 1 ;;
  esac
}

table() {  # DIR
  python3 - "$1" <<'EOF'
import glob, json, os, sys
d = sys.argv[1]
rows, meta = [], []
for path in sorted(glob.glob(os.path.join(d, "*.json"))):
    with open(path) as f:
        j = json.load(f)
    if "deciders" not in j:
        continue
    rows.append(j)
def pct(x):
    return "—" if x is None or x < 0 else "%.1f%%" % (100 * x)
def num(x, fmt="%.1f"):
    return "—" if x is None or x < 0 else fmt % x
def secs(x, cens=False):
    if x is None or x < 0:
        return "—"
    return ("≥" if cens else "") + ("%.0f" % x)
harmful = [r for r in rows if r.get("can_hurt")]
good = [r for r in rows if not r.get("can_hurt")]
print("| scenario | decider | runs | completed | halted | stalled | false halts (95 % CI) "
      "| hurt to horizon: mean (p95) | exposed at halt: mean (p95) | × oracle "
      "| time to halt p50 / p95 (s) | completion p50 / p95 (s) | halt reasons |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in harmful + good:
    oracle = r["deciders"].get("oracle", {})
    for name, s in r["deciders"].items():
        fh = "n/a" if s["good_runs"] == 0 else "%d/%d = %.2f%% (%.2f–%.2f%%)" % (
            s["false_halts"], s["good_runs"], 100 * s["false_halt_rate"],
            100 * s["false_halt_ci95"][0], 100 * s["false_halt_ci95"][1])
        ratio = "—"
        o = oracle.get("exposed_at_halt_mean", -1)
        if name != "oracle" and s["exposed_at_halt_mean"] >= 0 and o and o > 0:
            ratio = "%.2f×" % (s["exposed_at_halt_mean"] / o)
        reasons = ", ".join("%s %d" % kv for kv in sorted(s["halt_reasons"].items()))
        print("| %s | %s | %d | %s | %s | %s | %s | %s (%s) | %s (%s) | %s | %s / %s | %s / %s | %s |" % (
            r["scenario"], name.replace("_", " "), s["runs"],
            pct(s["completed_fraction"]), pct(s["halted_fraction"]),
            pct(s["stalled_fraction"]), fh,
            num(s["hurt_mean"]), num(s["hurt_p95"], "%.0f"),
            num(s["exposed_at_halt_mean"]), num(s["exposed_at_halt_p95"], "%.0f"),
            ratio, secs(s["time_to_halt_s_p50"]), secs(s["time_to_halt_s_p95"]),
            secs(s["completion_s_p50"], s["completion_p50_censored"]),
            secs(s["completion_s_p95"], s["completion_p95_censored"]),
            reasons or "—"))
print()
print("Seeds and commands:")
print()
for r in rows:
    print("- `%s`: seeds %d..%d, horizon %.0f h: `%s`" % (
        r["scenario"], r["seed_offset"] + 1, r["seed_offset"] + r["seeds"],
        r["horizon_s"] / 3600, r.get("command", "")))
    for w in r.get("warnings", []):
        print("  - warning: %s" % w)
EOF
}

if [[ "${1:-}" == "--table" ]]; then
  table "${2:-$OUT}"
  exit 0
fi

mkdir -p "$OUT"
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for f in bench/scenarios/*.textproto; do names+=("$(basename "$f" .textproto)"); done
fi
for name in "${names[@]}"; do
  scenario="bench/scenarios/$name.textproto"
  plan="$PLAN"
  [[ -f "bench/scenarios/plans/$name.textproto" ]] && plan="bench/scenarios/plans/$name.textproto"
  seeds=$SEEDS
  is_good "$name" && seeds=$GOOD_SEEDS
  [[ "$name" == boot-loop-total ]] && seeds=$BIG_SEEDS
  cmd=("$SIM" --plan="$plan" --scenario="$scenario" --seeds="$seeds"
       --seed_offset="$SEED_OFFSET" --deciders="$DECIDERS" --threads="$THREADS"
       --json --runs="$OUT/$name.runs.jsonl")
  echo "== $name ($seeds seeds)" >&2
  /usr/bin/time -f "   %e s wall, %M KB max RSS" "${cmd[@]}" > "$OUT/$name.json.tmp"
  # Record the command in the summary.
  python3 - "$OUT/$name.json.tmp" "${cmd[*]}" > "$OUT/$name.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
j["command"] = sys.argv[2]
print(json.dumps(j))
EOF
  rm -f "$OUT/$name.json.tmp"
done
table "$OUT"
