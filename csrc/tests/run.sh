#!/usr/bin/env bash
# Builds and runs the C test drivers: csrc/tests/run.sh [CC] [extra flags...]
#   e.g. csrc/tests/run.sh clang -fsanitize=address,undefined
# kernels.c is compiled once per SIMD target (as setup.py does); on x86-64 the
# avx2 / avx512 targets are included unless FL_TARGETS=baseline.  Each test
# binary runs once per target this CPU supports (FL_FORCE_TARGET selects it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/..
cc=${1:-${CC:-cc}}
shift || true
build=${FL_TEST_BUILD:-$(mktemp -d)}
mkdir -p "$build"
flags=(-std=c99 -O3 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math "-I$src")
machine=$("$cc" -dumpmachine 2>/dev/null || uname -m)
targets=${FL_TARGETS:-}
if [ -z "$targets" ]; then
    case "$machine" in
        x86_64*|amd64*) targets="baseline avx2 avx512" ;;
        *) targets="baseline" ;;
    esac
fi
target_flags() {
    case $1 in
        baseline) tf=() ;;
        avx2) tf=(-mavx2 -mfma) ;;
        avx512) tf=(-mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl -mprefer-vector-width=512) ;;
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
}
objs=()
have=()
for t in $targets; do
    target_flags "$t"
    [ "$t" = baseline ] || have+=(-DFL_HAVE_"$(echo "$t" | tr a-z A-Z)")
    "$cc" "${flags[@]}" "${tf[@]}" -DFL_TARGET="$t" -c "$src/kernels.c" -o "$build/kernels_$t.o" "$@"
    objs+=("$build/kernels_$t.o")
done
"$cc" "${flags[@]}" "${have[@]}" -c "$src/dispatch.c" -o "$build/dispatch.o" "$@"
"$cc" "${flags[@]}" -c "$src/runtime.c" -o "$build/runtime.o" "$@"
objs+=("$build/dispatch.o" "$build/runtime.o")
status=0
# Drivers of the dispatched kernels: one binary, run once per target.
for test in "$here"/test_kernels.c "$here"/test_threads.c; do
    name=$(basename "$test" .c)
    "$cc" "${flags[@]}" "$test" "${objs[@]}" -o "$build/$name" -lm -pthread "$@"
done
for t in $targets; do
    for name in test_kernels test_threads; do
        echo "== $name [$t]"
        FL_FORCE_TARGET=$t ${FL_TEST_RUNNER:-} "$build/$name" || status=1
    done
    # fl_vmath.h is header-only: compile its test with this target's ISA flags
    # (and run it only where the CPU has them: the kernel test above says so).
    target_flags "$t"
    "$cc" "${flags[@]}" "${tf[@]}" "$here/test_vmath.c" -o "$build/test_vmath_$t" -lm "$@"
    if FL_FORCE_TARGET=$t "$build/test_kernels" | grep -q "not supported"; then
        echo "== test_vmath [$t]: skipped, CPU lacks it"
    else
        echo "== test_vmath [$t]"
        ${FL_TEST_RUNNER:-} "$build/test_vmath_$t" || status=1
    fi
done
exit $status
