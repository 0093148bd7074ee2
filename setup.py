"""Build script: the Cython wrapper plus the portable C core in csrc/.

The C sources are compiled by a small build_ext subclass so that they get their
own flags (strict C99 warnings, no math errno) separately from the
Cython-generated file, and so that later per-target objects can be added.
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")

# Kernel sources compiled once each.  Every source gets the same flags here;
# nothing may assume the build machine's CPU (no -march=native).
CORE_SOURCES = [
    os.path.join(CSRC, "kernels.c"),
    os.path.join(CSRC, "runtime.c"),
]


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
    ]


class BuildExt(build_ext):
    def build_extension(self, ext):
        ctype = self.compiler.compiler_type
        objects = self.compiler.compile(
            CORE_SOURCES,
            output_dir=self.build_temp,
            include_dirs=[CSRC],
            extra_postargs=core_flags(ctype),
            depends=[os.path.join(CSRC, f) for f in os.listdir(CSRC) if f.endswith((".h", ".inc"))],
        )
        ext.extra_objects = list(ext.extra_objects or []) + objects
        if ctype != "msvc":
            ext.extra_compile_args = list(ext.extra_compile_args or []) + ["-O2"]
            if sys.platform.startswith("linux"):
                ext.extra_link_args = list(ext.extra_link_args or []) + ["-lm"]
        super().build_extension(ext)


extensions = [
    Extension(
        "fusedloss._kernels",
        sources=[os.path.join("src", "fusedloss", "_kernels.pyx")],
        include_dirs=[CSRC, np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
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
