#!/usr/bin/env bash
# CI wrapper for tools/cross_check.sh: installs the cross toolchains and
# emulators with apt-get (Debian/Ubuntu, as root) when they are missing, then
# runs every platform in quick mode (aarch64 under qemu, Windows x86-64 under
# wine, clang natively).  Extra arguments go to cross_check.sh (platform names).
#
# Takes about 4 minutes on a 2-core x86-64 machine (most of it test_threads
# under qemu) once the packages are installed; installing them adds one or two.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export FL_CROSS_INSTALL=${FL_CROSS_INSTALL:-1}
export FL_CROSS_QUICK=${FL_CROSS_QUICK:-1}
exec bash "$here/cross_check.sh" "$@"
