#!/usr/bin/env bash
# Cross-compiles the C core and its test drivers for other platforms and runs
# them here, under emulation where the CPU differs:
#
#   aarch64   aarch64-linux-gnu-gcc, run under qemu-aarch64 (baseline only:
#             NEON is part of the aarch64 baseline)
#   windows   x86_64-w64-mingw32-gcc, run under wine (baseline, avx2, avx512;
#             exercises runtime.c's Win32 thread branch)
#   clang     clang for this x86-64 machine, run natively (all x86 targets)
#
# Usage: tools/cross_check.sh [aarch64] [windows] [clang]     (default: all)
#
# Environment:
#   FL_CROSS_INSTALL=1   install the missing toolchains with apt-get (root only)
#   FL_CROSS_QUICK=1     shorter runs: test_threads "quick" and fewer sample
#                        points in test_vmath (-DSWEEP_N=$FL_CROSS_SWEEP_N,
#                        default 100000); meant for CI
#   FL_CROSS_BUILD=DIR   build directory (default: a new temporary directory)
#   FL_CROSS_TIMEOUT=S   limit for one test binary run (default 1200 s)
#
# Flags: csrc/tests/run.sh's, i.e. setup.py's (-O3, -fno-math-errno,
# -fno-trapping-math) plus -Wpedantic -Werror, strict C99, for the library and
# the test drivers alike.
#
# How each test driver runs:
#   - a driver that reads FL_FORCE_TARGET runs once per SIMD target;
#   - a driver that does not include fusedloss.h (header-only tests of the
#     vector maths) is compiled once per target's ISA flags and each build runs;
#   - any other driver runs once, with the target dispatch.c picks.
# Targets this CPU cannot run (AVX-512 under wine on an AVX2 machine) are
# reported as skipped.
#
# Each driver prints "N passed, N failed" last.  The script prints one line per
# run, a summary per platform, and a closing "cross_check: N passed, N failed";
# it exits non-zero when any check failed, any binary crashed or printed no
# summary, or a requested platform could not be built.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
src=$root/csrc
tests_dir=$src/tests

platforms=("$@")
[ ${#platforms[@]} -eq 0 ] && platforms=(aarch64 windows clang)
for p in "${platforms[@]}"; do
    case $p in
        aarch64|windows|clang) ;;
        *) echo "unknown platform '$p' (aarch64, windows, clang)" >&2; exit 2 ;;
    esac
done

quick=${FL_CROSS_QUICK:-0}
sweep_n=${FL_CROSS_SWEEP_N:-100000}
run_timeout=${FL_CROSS_TIMEOUT:-1200}
build=${FL_CROSS_BUILD:-$(mktemp -d "${TMPDIR:-/tmp}/fl-cross.XXXXXX")}
mkdir -p "$build"

lib_flags=(-std=c99 -O3 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math
           "-I$src")
test_flags=(-std=c99 -O3 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math
            "-I$src")
# shellcheck source=simd_targets.sh
. "$here/simd_targets.sh"
fl_simd_flags avx2
x86_avx2=("${tf[@]}")
fl_simd_flags avx512
x86_avx512=("${tf[@]}")

# ---- toolchains ---------------------------------------------------------------

wine_bin() {
    local w
    for w in wine64 /usr/lib/wine/wine64 wine; do
        if command -v "$w" >/dev/null 2>&1; then
            command -v "$w"
            return 0
        fi
    done
    return 1
}

# Debian packages for a platform, and whether its tools are here.
packages_for() {
    case $1 in
        aarch64) echo gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ;;
        windows) echo gcc-mingw-w64-x86-64 wine64 ;;
        clang) echo clang ;;
    esac
}
have_tools() {
    case $1 in
        aarch64) command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null &&
                     [ -d /usr/aarch64-linux-gnu/lib ] ;;
        windows) command -v x86_64-w64-mingw32-gcc >/dev/null && wine_bin >/dev/null ;;
        clang) command -v clang >/dev/null ;;
    esac
}

if [ "${FL_CROSS_INSTALL:-0}" = 1 ]; then
    missing=()
    for p in "${platforms[@]}"; do
        have_tools "$p" || missing+=($(packages_for "$p"))
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            echo "FL_CROSS_INSTALL=1 needs root and apt-get; install: ${missing[*]}" >&2
            exit 2
        fi
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
            { echo "apt-get install failed" >&2; exit 2; }
    fi
fi

# ---- bookkeeping --------------------------------------------------------------

total_pass=0 total_fail=0 total_skip=0
plat_pass=0 plat_fail=0 plat_skip=0
summaries=()
notes=()

# Host CPU support for an x86 target (for the binaries that run natively or
# under wine, which runs x86-64 code on the host CPU).
host_runs() {
    local flags
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
    case $1 in
        baseline) return 0 ;;
        avx2) for f in avx2 fma; do [[ " $flags " == *" $f "* ]] || return 1; done ;;
        avx512) for f in avx2 fma avx512f avx512dq avx512bw avx512vl; do
                    [[ " $flags " == *" $f "* ]] || return 1; done ;;
    esac
    return 0
}

# compile CC OUT FLAGS... : one compiler call; on failure prints the error.
compile() {
    local cc=$1 out=$2 log
    shift 2
    log=$build/compile.log
    if "$cc" "$@" -o "$out" >"$log" 2>&1; then
        [ -s "$log" ] && sed 's/^/    /' "$log"
        return 0
    fi
    echo "  COMPILE ERROR: $cc ... -o $(basename "$out")"
    sed 's/^/    /' "$log" | head -40
    return 1
}

# Test drivers only: if the compiler itself crashes (an internal compiler
# error, not a problem in the code), retry without the vectoriser and note it.
compile_test() {
    local cc=$1 out=$2
    shift 2
    if "$cc" "$@" -o "$out" >"$build/compile.log" 2>&1; then
        return 0
    fi
    if grep -q "internal compiler error" "$build/compile.log"; then
        local where
        where=$(grep -m1 -B1 "internal compiler error" "$build/compile.log" | tr '\n' ' ')
        echo "  NOTE: $cc crashed on $(basename "$out") (compiler bug): $where"
        echo "        retrying that test driver with -fno-tree-vectorize"
        notes+=("$cc internal compiler error on $(basename "$out"); built with -fno-tree-vectorize")
        compile "$cc" "$out" "$@" -fno-tree-vectorize
        return
    fi
    echo "  COMPILE ERROR: $cc ... -o $(basename "$out")"
    sed 's/^/    /' "$build/compile.log" | head -40
    return 1
}

# run LABEL TARGET-ENV-VALUE BINARY [ARGS...]: runs through $runner, parses the
# closing "N passed, N failed" line.
runner=()
run_test() {
    local label=$1 target=$2 bin=$3 log rc last p f t0 t1
    shift 3
    log=$build/$(basename "$bin").${target:-default}.log
    t0=$(date +%s)
    if [ -n "$target" ]; then
        timeout "$run_timeout" env FL_FORCE_TARGET="$target" "${runner[@]}" "$bin" "$@" \
            >"$log" 2>&1
    else
        timeout "$run_timeout" env -u FL_FORCE_TARGET "${runner[@]}" "$bin" "$@" >"$log" 2>&1
    fi
    rc=$?
    t1=$(date +%s)
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if grep -q "not supported on this CPU" "$log" && [ -z "$last" ]; then
        printf '  %-28s skipped (%s)\n' "$label" "$(grep -m1 'not supported' "$log")"
        plat_skip=$((plat_skip + 1))
        return
    fi
    if [ -z "$last" ]; then
        printf '  %-28s CRASHED or no summary line (exit %d, %ds); last lines:\n' "$label" "$rc" \
            $((t1 - t0))
        tail -5 "$log" | sed 's/^/    /'
        plat_fail=$((plat_fail + 1))
        return
    fi
    p=${last%% passed*}
    f=${last#*, }
    f=${f%% failed*}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # a failing exit status is a failure whatever the count says
        last="$last, but exit status $rc"
    fi
    printf '  %-28s %s  (%ds)\n' "$label" "$last" $((t1 - t0))
    if [ "$f" -ne 0 ]; then
        grep FAIL "$log" | head -20 | sed 's/^/    /'
    fi
    plat_pass=$((plat_pass + p))
    plat_fail=$((plat_fail + f))
}

# ---- one platform -------------------------------------------------------------

# check_platform NAME CC EXE-SUFFIX "TARGETS" "LINK FLAGS" CAN-RUN-FN
check_platform() {
    local name=$1 cc=$2 exe=$3 targets=$4 link=$5 can_run=$6
    local dir=$build/$name t tf objs=() have=() test_src tname bin sweep extra
    mkdir -p "$dir"
    plat_pass=0 plat_fail=0 plat_skip=0
    echo
    echo "== $name: $("$cc" --version | head -1)${runner[*]:+, run with ${runner[*]}}"

    for t in $targets; do
        case $t in
            baseline) tf=() ;;
            avx2) tf=("${x86_avx2[@]}"); have+=(-DFL_HAVE_AVX2) ;;
            avx512) tf=("${x86_avx512[@]}"); have+=(-DFL_HAVE_AVX512) ;;
        esac
        compile "$cc" "$dir/kernels_$t.o" "${lib_flags[@]}" "${tf[@]}" -DFL_TARGET="$t" \
            -c "$src/kernels.c" || { plat_fail=$((plat_fail + 1)); }
        objs+=("$dir/kernels_$t.o")
    done
    compile "$cc" "$dir/dispatch.o" "${lib_flags[@]}" "${have[@]}" -c "$src/dispatch.c" ||
        plat_fail=$((plat_fail + 1))
    compile "$cc" "$dir/runtime.o" "${lib_flags[@]}" -c "$src/runtime.c" ||
        plat_fail=$((plat_fail + 1))
    objs+=("$dir/dispatch.o" "$dir/runtime.o")
    if [ "$plat_fail" -ne 0 ]; then
        echo "  the library does not compile for $name"
        finish_platform "$name"
        return
    fi

    sweep=()
    [ "$quick" = 1 ] && sweep=(-DSWEEP_N="$sweep_n")
    for test_src in "$tests_dir"/test_*.c; do
        tname=$(basename "$test_src" .c)
        extra=()
        [ "$quick" = 1 ] && grep -q '"quick"' "$test_src" && extra=(quick)
        if grep -q FL_FORCE_TARGET "$test_src"; then
            bin=$dir/$tname$exe
            compile_test "$cc" "$bin" "${test_flags[@]}" "$test_src" "${objs[@]}" $link ||
                { plat_fail=$((plat_fail + 1)); continue; }
            for t in $targets; do
                if ! $can_run "$t"; then
                    printf '  %-28s skipped (this CPU lacks %s)\n' "$tname [$t]" "$t"
                    plat_skip=$((plat_skip + 1))
                    continue
                fi
                run_test "$tname [$t]" "$t" "$bin" "${extra[@]}"
            done
        elif ! grep -q '"fusedloss.h"' "$test_src"; then
            for t in $targets; do
                case $t in
                    baseline) tf=() ;;
                    avx2) tf=("${x86_avx2[@]}") ;;
                    avx512) tf=("${x86_avx512[@]}") ;;
                esac
                bin=$dir/${tname}_$t$exe
                compile_test "$cc" "$bin" "${test_flags[@]}" "${tf[@]}" "${sweep[@]}" \
                    "$test_src" $link || { plat_fail=$((plat_fail + 1)); continue; }
                if ! $can_run "$t"; then
                    printf '  %-28s skipped (this CPU lacks %s)\n' "$tname [$t flags]" "$t"
                    plat_skip=$((plat_skip + 1))
                    continue
                fi
                run_test "$tname [$t flags]" "" "$bin" "${extra[@]}"
            done
        else
            bin=$dir/$tname$exe
            compile_test "$cc" "$bin" "${test_flags[@]}" "$test_src" "${objs[@]}" $link ||
                { plat_fail=$((plat_fail + 1)); continue; }
            run_test "$tname [dispatch]" "" "$bin" "${extra[@]}"
        fi
    done
    finish_platform "$name"
}

finish_platform() {
    local line
    line=$(printf '%s: %d passed, %d failed, %d skipped' "$1" "$plat_pass" "$plat_fail" \
        "$plat_skip")
    echo "  -> $line"
    summaries+=("$line")
    total_pass=$((total_pass + plat_pass))
    total_fail=$((total_fail + plat_fail))
    total_skip=$((total_skip + plat_skip))
}

any_x86() { host_runs "$1"; }
only_baseline() { [ "$1" = baseline ]; }

start=$(date +%s)
echo "cross_check: build directory $build, FL_CROSS_QUICK=$quick"
for p in "${platforms[@]}"; do
    if ! have_tools "$p"; then
        echo
        echo "== $p: toolchain missing (Debian packages: $(packages_for "$p"));"
        echo "   run with FL_CROSS_INSTALL=1 as root, or install them"
        summaries+=("$p: not run (toolchain missing)")
        total_fail=$((total_fail + 1))
        continue
    fi
    case $p in
        aarch64)
            runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
            check_platform aarch64 aarch64-linux-gnu-gcc "" baseline "-lm -pthread" only_baseline
            ;;
        windows)
            # A private prefix, no Mono/Gecko prompts, no Wine debug chatter.
            export WINEPREFIX=${WINEPREFIX:-$build/wineprefix}
            export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
            wine=$(wine_bin)
            "$wine" wineboot -i >/dev/null 2>&1 || true
            runner=("$wine")
            # -static: no MinGW runtime DLLs needed beside the .exe
            check_platform windows x86_64-w64-mingw32-gcc .exe "baseline avx2 avx512" \
                "-static -lm" any_x86
            command -v wineserver >/dev/null && WINEPREFIX=$WINEPREFIX wineserver -k 2>/dev/null
            ;;
        clang)
            runner=()
            if [ "$(uname -m)" = x86_64 ]; then
                check_platform clang-x86_64 clang "" "baseline avx2 avx512" "-lm -pthread" any_x86
            else
                check_platform "clang-$(uname -m)" clang "" baseline "-lm -pthread" only_baseline
            fi
            ;;
    esac
done
end=$(date +%s)

echo
echo "== summary ($((end - start)) s)"
for s in "${summaries[@]}"; do
    echo "  $s"
done
for n in "${notes[@]}"; do
    echo "  note: $n"
done
echo "cross_check: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
