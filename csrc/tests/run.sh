#!/usr/bin/env bash
# Builds and runs the C test driver: csrc/tests/run.sh [CC] [extra flags...]
# e.g. csrc/tests/run.sh clang -fsanitize=address,undefined
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cc=${1:-${CC:-cc}}
shift || true
out=${FL_TEST_BIN:-$here/test_kernels}
"$cc" -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -fno-math-errno -fno-trapping-math \
    -I"$here/.." "$here/test_kernels.c" "$here/../kernels.c" "$here/../runtime.c" \
    -o "$out" -lm "$@"
${FL_TEST_RUNNER:-} "$out"
