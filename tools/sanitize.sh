#!/usr/bin/env bash
# Runs the C test drivers (csrc/tests/test_*.c, via csrc/tests/run.sh) under
# sanitizers and valgrind:
#
#   tools/sanitize.sh            # asan: AddressSanitizer + UBSan (+ LeakSanitizer),
#                                #       every SIMD target this CPU runs
#   tools/sanitize.sh valgrind   # valgrind memcheck, baseline + avx2 kernels
#                                #       (valgrind does not emulate AVX-512; use gcc:
#                                #       valgrind 3.19 cannot read clang 14's DWARF 5)
#   tools/sanitize.sh tsan       # ThreadSanitizer on the drivers that start threads
#                                #       (test_kernels, test_threads: concurrent
#                                #       callers, the racing writer, concurrent
#                                #       introspection, the interrupt hook), every
#                                #       SIMD target this CPU runs; test_vmath is
#                                #       single-threaded and left out
#   tools/sanitize.sh all        # all three
#
# Environment: CC (default: clang if present, else gcc), FL_SAN_BUILD (build
# directory, default a temporary one), FL_TEST_QUICK=1 (the drivers' smaller
# sizes).  Exits non-zero if any driver fails or any tool reports an error;
# prints the time each mode took.
#
# TSan and the racing-writer test: test_threads.c races a writer thread against
# the kernels' reads of the class indices on purpose (the kernels must stay
# memory-safe when Python code mutates the targets during a call).  The writer
# stores with relaxed atomics, but the kernels read with a plain volatile load,
# which TSan reports; csrc/tests/tsan.supp suppresses exactly the reports whose
# stacks contain the writer (fl_test_racing_writer), so every other race is
# still fatal (halt_on_error=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../csrc/tests/run.sh
cc=${CC:-$(command -v clang >/dev/null 2>&1 && echo clang || echo gcc)}
modes=${1:-asan}
[ "$modes" = all ] && modes="asan valgrind tsan"
base=${FL_SAN_BUILD:-$(mktemp -d)}
status=0
for mode in $modes; do
    t0=$(date +%s)
    echo "=== $mode ($cc)"
    case $mode in
        asan)
            export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
            export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
            FL_TEST_BUILD=$base/asan "$run" "$cc" -fsanitize=address,undefined \
                -fno-sanitize-recover=all -fno-omit-frame-pointer -g || status=1
            ;;
        valgrind)
            if ! command -v valgrind >/dev/null 2>&1; then
                echo "valgrind not installed (apt-get install valgrind): skipped"
                continue
            fi
            # The runner: memcheck errors and definite leaks exit 99 (a failure).
            # test_threads and test_kernels run their quick sizes (valgrind is ~50x
            # slower).  valgrind emulates x87 long double with 64-bit doubles, so
            # test_vmath's ULP sweeps (long double reference) fail by 1-3 ULP under
            # it: for test_vmath only memcheck's verdict counts.
            mkdir -p "$base/valgrind"
            runner=$base/valgrind/runner.sh
            cat > "$runner" <<'RUNNER'
#!/usr/bin/env bash
name=$(basename "$1")
extra=()
case $name in test_threads|test_kernels|test_family) extra=(quick) ;; esac
valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    "$@" "${extra[@]}"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 99 ] && [ "${name#test_vmath}" != "$name" ]; then
    echo "(valgrind: $name accuracy checks not meaningful under valgrind's 64-bit long double; no memcheck error)"
    rc=0
fi
exit $rc
RUNNER
            chmod +x "$runner"
            FL_TARGETS=${FL_VALGRIND_TARGETS:-baseline avx2} FL_TEST_BUILD=$base/valgrind \
                FL_TEST_RUNNER="$runner" "$run" "$cc" -gdwarf-4 || status=1
            ;;
        tsan)
            supp=$(cd "$here/../csrc/tests" && pwd)/tsan.supp
            export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}:suppressions=$supp"
            FL_TESTS="test_kernels test_threads test_family" FL_TEST_BUILD=$base/tsan \
                "$run" "$cc" -fsanitize=thread -g || status=1
            ;;
        *)
            echo "unknown mode $mode (asan, valgrind, tsan, all)" >&2
            exit 2
            ;;
    esac
    echo "=== $mode: $(( $(date +%s) - t0 )) s"
done
exit $status
