#!/bin/sh
# make bench: runs every benchmark of build/bench (QUICK=1: a smoke run), then writes
# bench/results/latest.json from the goals they recorded. Exits 1 if a goal failed or a benchmark
# could not run.
set -u
bin=${1:-build/bench/bench}
out=${BENCH_RESULTS:-bench/results}
export BENCH_RESULTS="$out"
mkdir -p "$out"
: >"$out/runs.jsonl"
: >"$out/goals.jsonl"
status=0
for b in "$bin"/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    timeout 900 "$b" || status=1
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
machine="$(uname -sr), $(nproc) CPU ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version /mosquitto /p' | head -1)"
{
    printf '{"machine": "%s", "quick": %s, "date": "%s",\n "goals": [\n' \
        "$(printf '%s' "$machine" | tr '"\\' "''")" "$([ -n "${BENCH_QUICK:-}" ] && echo true || echo false)" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    sed '$!s/$/,/; s/^/  /' "$out/goals.jsonl"
    printf ' ]}\n'
} >"$out/latest.json"
echo "== goals ($out/latest.json)"
grep -c '"pass": true' "$out/goals.jsonl" | xargs printf '%s passed, '
grep -c '"pass": false' "$out/goals.jsonl" | xargs printf '%s failed\n'
grep -q '"pass": false' "$out/goals.jsonl" && status=1
exit $status
