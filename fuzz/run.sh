#!/usr/bin/env bash
# Builds the libFuzzer harness of the C kernels (fuzz/fuzz_kernels.c) with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs a bounded fuzzing run.
#
#   fuzz/run.sh                 # 60 s of fuzzing (FL_FUZZ_TIME seconds)
#   FL_FUZZ_TIME=600 fuzz/run.sh
#   fuzz/run.sh CRASH_FILE      # replays one input (e.g. a saved crash)
#
# Needs clang with libFuzzer (Debian/Ubuntu: apt-get install clang; the
# runtime is in libclang-rt-NN-dev on newer releases).  kernels.c is compiled
# once per SIMD target, as setup.py and csrc/tests/run.sh do, and the harness
# switches targets per input.  runtime.c gets a low threading threshold so
# that inputs of a few thousand elements already run on helper threads.
# Environment: CC (default clang), FL_FUZZ_BUILD (build dir, default a temp
# dir), FL_FUZZ_CORPUS (corpus dir, default $FL_FUZZ_BUILD/corpus),
# FL_TARGETS (default "baseline avx2 avx512" on x86-64).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../csrc
# shellcheck source=../tools/simd_targets.sh
. "$here/../tools/simd_targets.sh"
cc=${CC:-clang}
build=${FL_FUZZ_BUILD:-$(mktemp -d)}
corpus=${FL_FUZZ_CORPUS:-$build/corpus}
mkdir -p "$build" "$corpus"
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
flags=(-std=c99 -O2 -g -Wall -Wextra -Werror -fno-math-errno -fno-trapping-math "-I$src" "${san[@]}")
machine=$("$cc" -dumpmachine 2>/dev/null || uname -m)
targets=${FL_TARGETS:-}
if [ -z "$targets" ]; then
    case "$machine" in
        x86_64*|amd64*) targets="baseline $(fl_simd_targets)" ;;
        *) targets="baseline" ;;
    esac
fi
objs=()
have=()
t0=$(date +%s)
for t in $targets; do
    fl_simd_flags "$t"
    [ "$t" = baseline ] || have+=(-DFL_HAVE_"$(echo "$t" | tr a-z A-Z)")
    "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link "${tf[@]}" -DFL_TARGET="$t" \
        -c "$src/kernels.c" -o "$build/kernels_$t.o"
    objs+=("$build/kernels_$t.o")
done
"$cc" "${flags[@]}" -fsanitize=fuzzer-no-link "${have[@]}" -c "$src/dispatch.c" \
    -o "$build/dispatch.o"
"$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -DFL_PARALLEL_MIN_ELEMS=4096 \
    -DFL_ELEMS_PER_THREAD=2048 -c "$src/runtime.c" -o "$build/runtime.o"
"$cc" "${flags[@]}" -fsanitize=fuzzer "$here/fuzz_kernels.c" "${objs[@]}" "$build/dispatch.o" \
    "$build/runtime.o" -o "$build/fuzz_kernels" -lm -pthread
echo "built $build/fuzz_kernels in $(( $(date +%s) - t0 )) s (targets: $targets)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ $# -gt 0 ]; then
    exec "$build/fuzz_kernels" "$@"
fi
# A few seeds: one per kernel (7: the introspection calls) and precision.
if [ -z "$(ls -A "$corpus")" ]; then
    for k in 0 1 2 3 4 5 6 7; do
        for p in 0 8; do
            printf "\\x$(printf %02x $((k + p)))\\x$(printf %02x 7)\\x05\\x04\\x10" > "$corpus/seed_$k$p"
            head -c 200 /dev/zero | tr '\0' 'd' >> "$corpus/seed_$k$p"
        done
    done
fi
# The fuzzer's own exit status decides (non-zero: a crash, a sanitizer report
# or a failed check; the input is saved under $build/crash-*).  Read it from
# PIPESTATUS right after the pipeline: with pipefail, a "|| true" would run
# and reset PIPESTATUS to its own 0, so a crash would pass.
set +e
"$build/fuzz_kernels" -max_total_time="${FL_FUZZ_TIME:-60}" -max_len=4096 -len_control=10 -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build/" "$corpus" 2>&1 |
    tee "$build/fuzz.log" | grep -E "^#[0-9]+ +(INITED|DONE|pulse)|^stat::|ERROR|SUMMARY|fuzz_kernels:|Done"
status=${PIPESTATUS[0]}
set -e
echo "fuzz log: $build/fuzz.log (corpus $corpus)"
if [ "$status" -ne 0 ]; then
    echo "fuzzing FAILED (exit $status): $(ls "$build"/crash-* "$build"/timeout-* "$build"/oom-* 2>/dev/null | tr '\n' ' ')"
fi
exit "$status"
