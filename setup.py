"""Build of atheria_core: the C extension and, when torch is importable at
build time, the LibTorch shim.

Environment switches:
  ATHERIA_SANITIZE=1    build with AddressSanitizer + UndefinedBehaviorSanitizer
  ATHERIA_NO_OPENMP=1   build serial even if the compiler supports OpenMP
  ATHERIA_NO_TORCH=1    never build the LibTorch shim
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = {}
with open(os.path.join(HERE, "python", "atheria_core", "_version.py")) as fh:
    exec(fh.read(), VERSION)

SANITIZE = os.environ.get("ATHERIA_SANITIZE") == "1"
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


def _compiler() -> str:
    return os.environ.get("CC") or sysconfig.get_config_var("CC").split()[0] or "cc"


def openmp_flags() -> list[str]:
    """['-fopenmp'] if the C compiler builds and links an OpenMP program, else []."""
    if os.environ.get("ATHERIA_NO_OPENMP") == "1":
        warnings.warn("atheria_core: ATHERIA_NO_OPENMP=1, building serial")
        return []
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "omp_check.c")
        with open(path, "w") as fh:
            fh.write(src)
        try:
            subprocess.run([_compiler(), "-fopenmp", path, "-o", os.path.join(tmp, "a.out")],
                           check=True, capture_output=True)
            return ["-fopenmp"]
        except (OSError, subprocess.CalledProcessError):
            warnings.warn("atheria_core: the C compiler has no OpenMP; building serial")
            return []


def core_extension() -> Extension:
    import numpy

    omp = openmp_flags()
    cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
              "-fno-strict-aliasing", "-O1" if SANITIZE else "-O3", "-g" if SANITIZE else "-g0"]
    ldflags = list(omp)
    if SANITIZE:
        cflags += SANITIZER_FLAGS
        ldflags += SANITIZER_FLAGS
    sources = sorted(glob.glob("src/core/*.c")) + sorted(glob.glob("src/python/*.c"))
    return Extension(
        "atheria_core._core",
        sources=sources,
        include_dirs=["include", "src/python", numpy.get_include()],
        define_macros=[("ATH_VERSION", '"%s"' % VERSION["__version__"]), ("_GNU_SOURCE", "1")],
        # serial builds ignore the OpenMP pragmas, which -Wall would report
        extra_compile_args=cflags + (omp or ["-Wno-unknown-pragmas"]),
        extra_link_args=ldflags,
        libraries=["m", "dl"],  # dl: py_torch.c dlopen()s the LibTorch shim
    )


def torch_shim_extension() -> Extension | None:
    """The LibTorch shim, built only when torch imports here (see docs/build.md)."""
    if os.environ.get("ATHERIA_NO_TORCH") == "1" or not os.path.exists("src/torch/torch_shim.cpp"):
        return None
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # noqa: BLE001 - any import failure means "no shim"
        print(f"atheria_core: torch not importable at build time ({exc}); "
              "building without the LibTorch shim", file=sys.stderr)
        return None
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    isystem = []
    for inc in cpp_extension.include_paths():
        isystem += ["-isystem", inc]
    lib_dirs = cpp_extension.library_paths()
    # -fvisibility=hidden: only the extern "C" ATH_TORCH_API functions are exported.
    cxxflags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1" if SANITIZE else "-O2",
                "-g" if SANITIZE else "-g0", "-fvisibility=hidden", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"] + isystem
    ldflags = [f"-Wl,-rpath,{d}" for d in lib_dirs]
    if SANITIZE:
        cxxflags += SANITIZER_FLAGS
        ldflags += SANITIZER_FLAGS
    return Extension(
        "atheria_core._torch_shim",
        sources=["src/torch/torch_shim.cpp", "src/torch/aoti_model.cpp"],
        depends=["include/atheria/torch_shim.h", "include/atheria/model.h", "include/atheria/common.h",
                 "include/atheria/load_error.h"],
        include_dirs=["include"],
        library_dirs=lib_dirs,
        libraries=["c10", "torch", "torch_cpu"],
        extra_compile_args=cxxflags,
        extra_link_args=ldflags,
        language="c++",
    )


class BuildExt(build_ext):
    """Drops -Wstrict-prototypes style C-only flags for the C++ shim."""

    def build_extension(self, ext):
        if ext.language == "c++":
            so = self.compiler.compiler_so
            self.compiler.compiler_so = [f for f in so if f not in ("-Wstrict-prototypes",)]
        super().build_extension(ext)


def extensions() -> list[Extension]:
    exts = [core_extension()]
    shim = torch_shim_extension()
    if shim is not None:
        exts.append(shim)
    return exts


setup(
    version=VERSION["__version__"],
    package_dir={"": "python"},
    packages=[p for p in __import__("setuptools").find_packages("python")],
    package_data={"atheria_core": ["py.typed", "*.pyi"],
                  "atheria_core.server": ["static/*.html", "static/*.js", "static/*.css"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExt},
    zip_safe=False,
)
