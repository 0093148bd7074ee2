#!/usr/bin/env bash
# Builds and runs the C test drivers: csrc/tests/run.sh [CC] [extra flags...]
#   e.g. csrc/tests/run.sh clang -fsanitize=address,undefined
# kernels.c is compiled once per SIMD target (as setup.py does); on x86-64 the
# avx2 / avx512 targets are included unless FL_TARGETS=baseline.  Each test
# binary runs once per target this CPU supports (FL_FORCE_TARGET selects it).
# Environment: CC, FL_TARGETS (SIMD targets), FL_TESTS (drivers to run, default
# "test_kernels test_threads test_family test_vmath"), FL_TEST_BUILD (build directory),
# FL_TEST_RUNNER (a command prefix, e.g. valgrind), FL_TEST_QUICK=1 (the
# drivers' smaller sizes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/..
# shellcheck source=../../tools/simd_targets.sh
. "$here/../../tools/simd_targets.sh"
cc=${1:-${CC:-cc}}
shift || true
build=${FL_TEST_BUILD:-$(mktemp -d)}
mkdir -p "$build"
flags=(-std=c99 -O3 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math "-I$src")
machine=$("$cc" -dumpmachine 2>/dev/null || uname -m)
targets=${FL_TARGETS:-}
if [ -z "$targets" ]; then
    case "$machine" in
        x86_64*|amd64*) targets="baseline $(fl_simd_targets)" ;;
        *) targets="baseline" ;;
    esac
fi
target_flags() { fl_simd_flags "$1"; }
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
tests=${FL_TESTS:-test_kernels test_threads test_family test_vmath}
wants() { case " $tests " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# Runs one driver, printing how long it took.
run_one() {
    local label=$1 t0 rc
    shift
    echo "== $label"
    t0=$(date +%s)
    rc=0
    "$@" || rc=1
    echo "== $label: $(( $(date +%s) - t0 )) s"
    return $rc
}
status=0
# Drivers of the dispatched kernels: one binary, run once per target.  The
# vector-maths test needs test_kernels too: it says which targets the CPU runs.
for name in test_kernels test_threads test_family; do
    wants "$name" || { [ "$name" = test_kernels ] && wants test_vmath; } || continue
    "$cc" "${flags[@]}" "$here/$name.c" "${objs[@]}" -o "$build/$name" -lm -pthread "$@"
done
for t in $targets; do
    for name in test_kernels test_threads test_family; do
        wants "$name" || continue
        FL_FORCE_TARGET=$t run_one "$name [$t]" ${FL_TEST_RUNNER:-} "$build/$name" || status=1
    done
    wants test_vmath || continue
    # fl_vmath.h is header-only: compile its test with this target's ISA flags
    # (and run it only where the CPU has them: the kernel test says so).
    target_flags "$t"
    "$cc" "${flags[@]}" "${tf[@]}" "$here/test_vmath.c" -o "$build/test_vmath_$t" -lm "$@"
    if FL_FORCE_TARGET=$t "$build/test_kernels" probe | grep -q "not supported"; then
        echo "== test_vmath [$t]: skipped, CPU lacks it"
    else
        run_one "test_vmath [$t]" ${FL_TEST_RUNNER:-} "$build/test_vmath_$t" || status=1
    fi
done
exit $status
