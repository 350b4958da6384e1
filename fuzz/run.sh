#!/bin/sh
# make fuzz: runs every libFuzzer target of build/fuzz for FUZZ_SECONDS each, starting from the
# committed corpus (fuzz/corpus/<name>, never written) and a working corpus that grows across runs
# (build/fuzz/corpus/<name>). A failure leaves its input in build/fuzz/artifacts/ and fails.
set -eu
build=$1
seconds=${2:-60}
cd "$(dirname "$0")/.."
status=0
mkdir -p "$build/artifacts"
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    work="$build/corpus/$name"
    mkdir -p "$work"
    echo "== fuzz_$name: $seconds s"
    if ! "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$name-" "$work" "fuzz/corpus/$name" \
        >"$build/fuzz_$name.log" 2>&1; then
        echo "fuzz_$name: FAILED; its log: $build/fuzz_$name.log; the input: $build/artifacts/" >&2
        tail -n 30 "$build/fuzz_$name.log" >&2
        status=1
        continue
    fi
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/fuzz_$name.log" |
        tr '\n' ' '
    echo "(working corpus: $(ls "$work" | wc -l) inputs)"
done
exit $status
