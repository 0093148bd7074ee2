#!/usr/bin/env bash
# Builds and runs the C test drivers: csrc/tests/run.sh [CC] [extra flags...]
#   e.g. csrc/tests/run.sh clang -fsanitize=address,undefined
# kernels.c is compiled once per SIMD target (as setup.py does); on x86-64 the
# avx2 / avx512 targets are included unless FL_TARGETS=baseline.  Each test
# binary runs once per target this CPU supports (FUSEDLOSS_SIMD selects it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/..
cc=${1:-${CC:-cc}}
shift || true
build=${FL_TEST_BUILD:-$(mktemp -d)}
mkdir -p "$build"
flags=(-std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math "-I$src")
machine=$("$cc" -dumpmachine 2>/dev/null || uname -m)
targets=${FL_TARGETS:-}
if [ -z "$targets" ]; then
    case "$machine" in
        x86_64*|amd64*) targets="baseline avx2 avx512" ;;
        *) targets="baseline" ;;
    esac
fi
objs=()
have=()
for t in $targets; do
    case $t in
        baseline) tf=() ;;
        avx2) tf=(-mavx2 -mfma); have+=(-DFL_HAVE_AVX2) ;;
        avx512) tf=(-mavx2 -mfma -mavx512f -mavx512dq -mavx512bw -mavx512vl); have+=(-DFL_HAVE_AVX512) ;;
        *) echo "unknown target $t" >&2; exit 2 ;;
    esac
    "$cc" "${flags[@]}" "${tf[@]}" -DFL_TARGET="$t" -c "$src/kernels.c" -o "$build/kernels_$t.o" "$@"
    objs+=("$build/kernels_$t.o")
done
"$cc" "${flags[@]}" "${have[@]}" -c "$src/dispatch.c" -o "$build/dispatch.o" "$@"
"$cc" "${flags[@]}" -c "$src/runtime.c" -o "$build/runtime.o" "$@"
objs+=("$build/dispatch.o" "$build/runtime.o")
status=0
for test in "$here"/test_*.c; do
    name=$(basename "$test" .c)
    "$cc" "${flags[@]}" "$test" "${objs[@]}" -o "$build/$name" -lm -pthread "$@"
done
for t in $targets; do
    for test in "$here"/test_*.c; do
        name=$(basename "$test" .c)
        echo "== $name [$t]"
        FL_FORCE_TARGET=$t ${FL_TEST_RUNNER:-} "$build/$name" || status=1
    done
done
exit $status
