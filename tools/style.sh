#!/usr/bin/env bash
# Style checks (what .pre-commit-config.yaml runs), for CI: ruff lint and
# format check on the Python sources, clang-format check on the C sources.
# Installs the pinned tools from PyPI first.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "ruff==0.17.6" "clang-format==18.1.8"
ruff check .
ruff format --check .
git ls-files 'csrc/*.c' 'csrc/*.h' 'csrc/*.inc' 'fuzz/*.c' 'bench/*.c' \
    | xargs clang-format --dry-run --Werror
echo "style: ok"
