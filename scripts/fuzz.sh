#!/usr/bin/env bash
# Fuzz smoke: builds the libFuzzer targets with clang (ASan + UBSan) in
# build-fuzz and runs each from its committed seeds (fuzz/corpus/<target>)
# and a fresh working corpus. On a finding it prints the report and the
# input, keeps the input in build-fuzz/artifacts/<target>/, and exits with
# the fuzzer's status (77 for a crash).
#
#   scripts/fuzz.sh                      # the CI run: seed 1, about a minute each
#   FUZZ_SECONDS=600 FUZZ_SEED=7 scripts/fuzz.sh   # explore longer
set -euo pipefail
cd "$(dirname "$0")/.."

# A fixed seed and run count keep CI's run close to the one made before
# pushing (not identical: hash seeds and thread timing still vary the
# coverage). Explore longer with FUZZ_SECONDS (it replaces the run count)
# and another FUZZ_SEED, and keep what a finding teaches in the seeds.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DRINGFENCE_FUZZ=ON -DRINGFENCE_BUILD_TESTS=OFF -DRINGFENCE_BUILD_BENCH=OFF
targets=(content_fuzz plan_fuzz api_fuzz http1_fuzz)
cmake --build build-fuzz --target "${targets[@]}" -j "$(nproc)"
for f in "${targets[@]}"; do
  rm -rf "build-fuzz/corpus/$f" "build-fuzz/artifacts/$f"
  mkdir -p "build-fuzz/corpus/$f" "build-fuzz/artifacts/$f"
  log="build-fuzz/$f.log"
  if [ -n "${FUZZ_SECONDS:-}" ]; then
    budget=(-max_total_time="$FUZZ_SECONDS")
  else
    # About a minute each here: plan_fuzz runs five times as fast as
    # content_fuzz; api_fuzz makes gRPC calls against a fresh server per
    # input, a hundred times slower.
    case "$f" in
      plan_fuzz) runs=1250000 ;;
      api_fuzz) runs=20000 ;;
      http1_fuzz) runs=1000000 ;;
      *) runs=250000 ;;
    esac
    budget=(-runs="${FUZZ_RUNS:-$runs}")
  fi
  if "./build-fuzz/bin/$f" "build-fuzz/corpus/$f" "fuzz/corpus/$f" \
      -seed="${FUZZ_SEED:-1}" "${budget[@]}" -print_final_stats=1 \
      -artifact_prefix="build-fuzz/artifacts/$f/" >"$log" 2>&1; then
    tail -5 "$log"
  else
    rc=$?
    # Enough of the report to act on, and the input that did it.
    echo "$f failed (exit $rc):"
    grep -v '^#\|^"' "$log" | tail -60
    for a in "build-fuzz/artifacts/$f"/*; do
      [ -f "$a" ] && { echo "$a:"; head -c 512 "$a" | od -c | head -20; }
    done
    exit "$rc"
  fi
done

