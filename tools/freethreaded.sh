#!/usr/bin/env bash
# Proves the free-threading claim: builds the package for a free-threaded
# (--disable-gil) CPython and runs its thread-safety tests with the GIL off.
#
#   bash tools/freethreaded.sh
#
# 1. A free-threaded CPython 3.13t: none is packaged for Debian bookworm and
#    python.org may be unreachable, so it is built from the upstream source
#    tarball that Debian's archive carries (deb.debian.org, trixie's python3.13
#    .orig.tar.xz, checked against its sha256), with --disable-gil and no PGO.
#    It is installed into $FL_FT_PREFIX and reused on later runs.  As root, the
#    build dependencies are installed with apt-get.
# 2. A fresh venv with numpy, Cython>=3.1 (needed for freethreading_compatible),
#    setuptools and the test extras; the project is built from a clean copy of
#    the source tree (tracked and untracked, not ignored, files: no stale
#    generated _kernels.c, build/ or .so from another interpreter).
# 3. Checks the GIL stays off: importing fusedloss with PYTHON_GIL unset must not
#    re-enable it (it would, with a RuntimeWarning, if the extension did not
#    declare Py_mod_gil = Py_MOD_GIL_NOT_USED); the same with PYTHON_GIL=0.
# 4. Runs tests/test_concurrency.py, tests/test_robustness.py and, when present,
#    tests/test_racing.py and tests/test_hostile.py against the installed package, from a temporary
#    directory, with PYTHON_GIL=0, and checks the GIL is still off afterwards.
#
# Environment:
#   FL_FT_PREFIX     where the interpreter is installed/reused
#                    (default ~/.cache/fusedloss-ft/python)
#   FL_FT_PYTHON     use this free-threaded interpreter instead (skips step 1)
#   FL_FT_SRC_URL, FL_FT_SRC_SHA256   another CPython source tarball
#   FL_FT_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   FL_FT_KEEP=1     keep the work directory (venv, build copy, logs)
#
# Takes about 8 minutes on a 2-core x86-64 machine the first time (6 of them
# compiling CPython), under 2 minutes once the interpreter is cached.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${FL_FT_PREFIX:-${HOME:-/tmp}/.cache/fusedloss-ft/python}
mirror=${FL_FT_MIRROR:-http://deb.debian.org/debian}
# Debian trixie's python3.13 source: the upstream Python-3.13.5.tar.xz.
default_url=$mirror/pool/main/p/python3.13/python3.13_3.13.5.orig.tar.xz
default_sha=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
jobs=$(nproc 2>/dev/null || echo 2)

work=$(mktemp -d "${TMPDIR:-/tmp}/fl-ft.XXXXXX")
cleanup() {
    if [ "${FL_FT_KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work/logs"

t_start=$(date +%s)
timings=()
phase_t0=0
phase_name=
phase() {  # phase NAME: ends the current phase (printing its time), starts NAME
    local now
    now=$(date +%s)
    if [ -n "$phase_name" ]; then
        echo "--- $phase_name: $((now - phase_t0)) s"
        timings+=("$(printf '%-34s %5d s' "$phase_name" $((now - phase_t0)))")
    fi
    phase_name=$1
    phase_t0=$now
    [ -n "$phase_name" ] && echo "=== $phase_name"
    return 0
}
die() { echo "freethreaded.sh: FAILED: $*" >&2; exit 1; }
logged() {  # logged NAME CMD...: runs CMD into logs/NAME.log, shows its tail on failure
    local log=$work/logs/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "--- last lines of $log:" >&2
        tail -n 60 "$log" >&2
        die "$*"
    fi
}

# A usable free-threaded interpreter: built with Py_GIL_DISABLED, and with the
# modules venv/pip/the tests need.
ft_ok() {
    [ -x "$1" ] && "$1" - <<'EOF' >/dev/null 2>&1
import sys, sysconfig
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
assert not sys._is_gil_enabled()
import ssl, ctypes, zlib, bz2, lzma, venv, ensurepip, hashlib, decimal, json  # noqa
EOF
}

# ---------------------------------------------------------------- 1. CPython
phase "1. free-threaded CPython"
if [ -n "${FL_FT_PYTHON:-}" ]; then
    py=$FL_FT_PYTHON
    ft_ok "$py" || die "FL_FT_PYTHON=$py is not a usable free-threaded interpreter"
    echo "using FL_FT_PYTHON=$py"
else
    py=
    for cand in "$prefix"/bin/python3.1[3-9]t; do
        if [ -f "$prefix/.fusedloss-ft-ok" ] && ft_ok "$cand"; then py=$cand; fi
    done
    if [ -n "$py" ]; then
        echo "reusing $py (delete $prefix to rebuild)"
    else
        # Build dependencies: compiler, and the headers for ssl (pip), zlib
        # (wheels), ctypes (libffi), bz2/lzma (tarfile, shutil archives).
        need=(build-essential pkg-config xz-utils curl ca-certificates
              libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev)
        missing=()
        for p in "${need[@]}"; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                echo "apt-get install ${missing[*]}"
                logged apt-update apt-get update
                logged apt-install env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y --no-install-recommends "${missing[@]}"
            else
                echo "warning: missing build dependencies (${missing[*]}), not root: trying anyway"
            fi
        fi

        # The source: the pinned tarball, else whatever python3.13/python3.14
        # source Debian trixie (then sid) currently has, with its sha256 from
        # the Sources index.
        url=${FL_FT_SRC_URL:-$default_url}
        sha=${FL_FT_SRC_SHA256:-}
        [ -z "${FL_FT_SRC_URL:-}" ] && sha=$default_sha
        tarball=$work/cpython.tar.xz
        if ! curl -fsSL --retry 3 --connect-timeout 20 -o "$tarball" "$url"; then
            [ -n "${FL_FT_SRC_URL:-}" ] && die "cannot download $url"
            echo "$url is gone; looking the current version up in Debian's Sources indices"
            url=
            for suite in trixie sid; do
                line=$(curl -fsSL --retry 3 --connect-timeout 20 \
                        "$mirror/dists/$suite/main/source/Sources.xz" | xz -dc | awk '
                    /^Package: /       { pkg = $2; dir = ""; sha = ""; file = ""; inck = 0; next }
                    /^Directory: /     { dir = $2; next }
                    /^Checksums-Sha256:/ { inck = 1; next }
                    /^ / && inck && $3 ~ /\.orig\.tar\.xz$/ { sha = $1; file = $3; next }
                    /^[^ ]/            { inck = 0 }
                    /^$/ { if (pkg ~ /^python3\.1[34]$/ && file != "") print pkg, dir "/" file, sha; pkg = "" }
                    END  { if (pkg ~ /^python3\.1[34]$/ && file != "") print pkg, dir "/" file, sha }' \
                    | sort -V | tail -n 1) || true
                if [ -n "$line" ]; then
                    url=$mirror/$(echo "$line" | cut -d' ' -f2)
                    sha=$(echo "$line" | cut -d' ' -f3)
                    curl -fsSL --retry 3 --connect-timeout 20 -o "$tarball" "$url" && break
                    url=
                fi
            done
            [ -n "$url" ] || die "no CPython 3.13/3.14 source found on $mirror"
        fi
        echo "source: $url"
        if [ -n "$sha" ]; then
            echo "$sha  $tarball" | sha256sum -c --quiet - || die "sha256 mismatch for $url"
        fi
        mkdir "$work/src"
        tar -xJf "$tarball" -C "$work/src" --strip-components=1
        # Never wipe a directory this script did not make (FL_FT_PREFIX=/usr/local...).
        if [ -d "$prefix" ] && [ -n "$(ls -A "$prefix")" ] && [ ! -e "$prefix/.fusedloss-ft-ok" ] \
                && [ ! -e "$prefix/.fusedloss-ft-build" ]; then
            die "$prefix exists and was not made by this script: remove it or set FL_FT_PREFIX"
        fi
        rm -rf "$prefix"
        mkdir -p "$prefix"
        touch "$prefix/.fusedloss-ft-build"
        (
            cd "$work/src"
            # No PGO/LTO (speed); no test modules (not needed, slow to install);
            # pip comes from ensurepip when the venv is created.
            logged configure ./configure --prefix="$prefix" --disable-gil \
                --disable-test-modules --with-ensurepip=no
            logged make make -j"$jobs"
            logged install make install
        )
        py=$(ls "$prefix"/bin/python3.1[3-9]t | head -n 1)
        ft_ok "$py" || { "$py" -c 'import ssl, ctypes, zlib, bz2, lzma' || true
                         die "the interpreter built in $prefix lacks free threading or a module"; }
        touch "$prefix/.fusedloss-ft-ok"
        rm -rf "$work/src" "$tarball"
    fi
fi
"$py" -VV
"$py" -c 'import sysconfig; print("Py_GIL_DISABLED =", sysconfig.get_config_var("Py_GIL_DISABLED"))'

# ------------------------------------------------------- 2. venv + the package
phase "2a. venv + test dependencies"
venv=$work/venv
"$py" -m venv "$venv"
vpy=$venv/bin/python
logged pip-upgrade "$vpy" -m pip install --upgrade pip
# Wheels only: numpy has cp313t/cp314t wheels; recent hypothesis releases are
# an sdist with a Rust extension (needs cargo and crates.io), so pip falls back
# to the newest hypothesis that has a wheel.  Never a long source build.
logged pip-deps "$vpy" -m pip install --only-binary :all: \
    "numpy>=2.0" "Cython>=3.1" "setuptools>=64" pytest hypothesis mpmath
"$vpy" -m pip list 2>/dev/null | grep -iE '^(numpy|cython|setuptools|pytest|hypothesis|mpmath) '

phase "2b. build + install fusedloss"
# A clean copy of the source: generated files (src/fusedloss/_kernels.c from an
# older Cython without freethreading_compatible, build/, .so) stay behind.
copy=$work/fusedloss-src
mkdir "$copy"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -xf - -C "$copy"
else
    tar -C "$repo" --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude='*.so' --exclude='*.o' --exclude=src/fusedloss/_kernels.c -cf - . \
        | tar -xf - -C "$copy"
fi
logged pip-install-fusedloss "$vpy" -m pip install -v --no-build-isolation --no-deps "$copy"
grep -E 'Cython|cythoniz|Compiling' "$work/logs/pip-install-fusedloss.log" | head -n 3 || true

# ------------------------------------------------------- 3. the GIL stays off
phase "3. GIL check"
cd "$work"   # never the source tree: src/ must not shadow the installed package
gil_check='
import sys, warnings
warnings.simplefilter("error")          # "The global interpreter lock (GIL) has been enabled..."
import fusedloss, fusedloss._kernels
import numpy as np
print("  fusedloss", getattr(fusedloss, "__version__", "?"), "from", fusedloss.__file__)
assert "site-packages" in fusedloss.__file__, "not the installed package: " + fusedloss.__file__
enabled = sys._is_gil_enabled()
print("  sys._is_gil_enabled() =", enabled)
assert not enabled, "importing fusedloss re-enabled the GIL"
'
echo "PYTHON_GIL unset (an extension without Py_MOD_GIL_NOT_USED would re-enable the GIL):"
env -u PYTHON_GIL "$vpy" -c "$gil_check" || die "GIL check (PYTHON_GIL unset)"
echo "PYTHON_GIL=0:"
PYTHON_GIL=0 "$vpy" -c "$gil_check" || die "GIL check (PYTHON_GIL=0)"

# ------------------------------------------------------------------- 4. tests
phase "4. thread-safety tests, GIL off"
tests=("$repo/tests/test_concurrency.py" "$repo/tests/test_robustness.py")
[ -f "$repo/tests/test_racing.py" ] && tests+=("$repo/tests/test_racing.py")
[ -f "$repo/tests/test_hostile.py" ] && tests+=("$repo/tests/test_hostile.py")
for t in "${tests[@]}"; do [ -f "$t" ] || die "missing test file $t"; done
echo "pytest ${tests[*]#$repo/}"
set +e
PYTHON_GIL=0 "$vpy" - "${tests[@]}" <<'EOF'
import sys
import pytest
rc = pytest.main(["-p", "no:cacheprovider", "-q", *sys.argv[1:]])
import fusedloss
enabled = sys._is_gil_enabled()
print("after the tests: fusedloss from", fusedloss.__file__)
print("after the tests: sys._is_gil_enabled() =", enabled)
if enabled:
    print("the GIL was enabled during the run", file=sys.stderr)
    rc = rc or 3
sys.exit(int(rc))
EOF
rc=$?
set -e
phase ""
echo "=== timings"
printf '%s\n' "${timings[@]}"
printf '%-34s %5d s\n' "total" $(($(date +%s) - t_start))
[ "$rc" = 0 ] || die "pytest exited with $rc"
echo "freethreaded.sh: OK (free-threaded $("$vpy" -c 'import sys; print(sys.version.split()[0])'), GIL off)"
