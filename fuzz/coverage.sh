#!/bin/sh
# Source coverage of the fuzz corpora (docs/TESTING.md "Fuzzing"): builds
# the harnesses again with clang's source-based coverage instead of the
# sanitizers (build/fuzz-cov/), runs each once over its checked-in seeds
# and the inputs fuzzing kept (build/fuzz/corpus/NAME), and prints
# llvm-cov's report for the modules it targets.
#
#   fuzz/coverage.sh [NAME...]          (make fuzz-cov)
set -eu
cd "$(dirname "$0")/.."
OUT=build/fuzz-cov
make --no-print-directory FUZZ_DIR=$OUT \
    FUZZ_SAN="-fprofile-instr-generate -fcoverage-mapping" fuzz-build >/dev/null

targets() {
    case $1 in
    decode) echo src/decode.c src/utf8.c ;;
    decimal) echo src/decimal.c ;;
    time) echo src/timeutil.c ;;
    percent | api) echo src/api.c ;;
    esac
}

names=${*:-$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')}
for n in $names; do
    mkdir -p "build/fuzz/corpus/$n"
    rm -f "$OUT/$n.profraw"
    LLVM_PROFILE_FILE="$OUT/$n.profraw" "$OUT/fuzz_$n" -runs=0 \
        "fuzz/corpus/$n" "build/fuzz/corpus/$n" >"$OUT/$n.log" 2>&1
    llvm-profdata-14 merge -sparse -o "$OUT/$n.profdata" "$OUT/$n.profraw"
    echo "== fuzz_$n ($(ls "fuzz/corpus/$n" "build/fuzz/corpus/$n" | grep -c '^[0-9a-f]\{40\}$') inputs)"
    # shellcheck disable=SC2046
    llvm-cov-14 report "$OUT/fuzz_$n" -instr-profile="$OUT/$n.profdata" $(targets "$n")
done
