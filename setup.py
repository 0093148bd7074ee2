"""Build script: the Cython wrapper plus the portable C core in csrc/.

The C sources are compiled by a small build_ext subclass so that they get their
own flags (strict C99 warnings, no math errno) separately from the
Cython-generated file, and kernels.c once per SIMD target (csrc/targets.txt)
with that target's ISA flags.
"""

import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")

# Sources compiled once, with baseline flags: nothing may assume the build
# machine's CPU (no -march=native).  kernels.c is compiled once per SIMD
# target instead (see simd_targets), and dispatch.c picks one at run time.
CORE_SOURCES = [
    os.path.join(CSRC, "runtime.c"),
    os.path.join(CSRC, "dispatch.c"),
]
KERNEL_SOURCE = os.path.join(CSRC, "kernels.c")


def _is_x86_64(plat_name=None):
    """True when building for x86-64.

    Honours cross builds: macOS ARCHFLAGS, MSVC's target (VSCMD_ARG_TGT_ARCH,
    which cibuildwheel sets for win_arm64 built on an x64 machine),
    _PYTHON_HOST_PLATFORM, and build_ext's plat_name (win-arm64,
    macosx-*-universal2, linux-i686, ...); the running interpreter's machine
    only when none of them says.
    """
    archflags = os.environ.get("ARCHFLAGS", "")
    if "-arch" in archflags:
        return "x86_64" in archflags and "arm64" not in archflags
    msvc_target = os.environ.get("VSCMD_ARG_TGT_ARCH", "")
    if msvc_target:
        return msvc_target.lower() == "x64"
    host = os.environ.get("_PYTHON_HOST_PLATFORM", "") or plat_name or ""
    if host:
        return host.lower().endswith(("x86_64", "amd64"))
    return platform.machine().lower() in ("x86_64", "amd64")


def simd_targets(compiler_type, plat_name=None):
    """(name, extra flags) for every kernel target to compile, baseline first."""
    targets = [("baseline", [])]
    if os.environ.get("FUSEDLOSS_BASELINE_ONLY") or not _is_x86_64(plat_name):
        return targets  # aarch64: NEON is part of the baseline
    # No -ffp-contract=fast: the kernels write their FMAs explicitly
    # (FL_FMA), so every loop variant (loss only, fused, in place) rounds alike.
    column = 2 if compiler_type == "msvc" else 1
    return targets + [(row[0], row[column].split()) for row in _target_table()]


def _target_table():
    """csrc/targets.txt: (name, GCC/Clang flags, MSVC flags) per SIMD target."""
    rows = []
    with open(os.path.join(HERE, "csrc", "targets.txt"), encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                rows.append([field.strip() for field in line.split("|")])
    return rows


def core_flags(compiler_type):
    if compiler_type == "msvc":
        return ["/O2", "/fp:precise", "/W3"]
    return [
        "-O3",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-fvisibility=hidden",
        "-pthread",
    ]


class BuildExt(build_ext):
    def build_extension(self, ext):
        ctype = self.compiler.compiler_type
        depends = [
            os.path.join(CSRC, f) for f in os.listdir(CSRC) if f.endswith((".h", ".inc", ".def"))
        ]
        targets = simd_targets(ctype, self.plat_name)
        objects = []
        for name, flags in targets:
            objects += self.compiler.compile(
                [KERNEL_SOURCE],
                output_dir=os.path.join(self.build_temp, "target_" + name),
                macros=[("FL_TARGET", name)],
                include_dirs=[CSRC],
                extra_postargs=core_flags(ctype) + flags,
                depends=depends,
            )
        have = [("FL_HAVE_" + name.upper(), "1") for name, _ in targets if name != "baseline"]
        objects += self.compiler.compile(
            CORE_SOURCES,
            output_dir=self.build_temp,
            macros=have,
            include_dirs=[CSRC],
            extra_postargs=core_flags(ctype),
            depends=depends,
        )
        ext.extra_objects = list(ext.extra_objects or []) + objects
        if ctype != "msvc":
            ext.extra_compile_args = list(ext.extra_compile_args or []) + ["-O2"]
            if sys.platform.startswith("linux"):
                # libm, and libpthread for the helper threads the runtime starts
                # per call (separate from libc before glibc 2.34, e.g. on
                # manylinux2014)
                ext.extra_link_args = list(ext.extra_link_args or []) + ["-lm", "-pthread"]
        super().build_extension(ext)


extensions = [
    Extension(
        "fusedloss._kernels",
        sources=[os.path.join("src", "fusedloss", "_kernels.pyx")],
        include_dirs=[CSRC, np.get_include()],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            # The oldest NumPy the built module runs with (= project.dependencies),
            # whichever NumPy 2.x builds it.
            ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION"),
        ],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
