"""pip install --no-build-isolation ./python: builds sams._sams with the top-level CMake
(SAMS_BUILD_PYTHON=ON, nothing else) for the interpreter running pip, and installs the package.
Needs cmake, a C++20 compiler, Eigen, pybind11-dev and python3-dev (tools/setup.sh); nothing is
downloaded."""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def version():
    parts = {}
    with open(os.path.join(ROOT, "include", "sams", "version.hpp")) as f:
        for line in f:
            for k in ("MAJOR", "MINOR", "PATCH"):
                if line.startswith(f"#define SAMS_VERSION_{k} "):
                    parts[k] = line.split()[2]
    return f"{parts['MAJOR']}.{parts['MINOR']}.{parts['PATCH']}"


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DSAMS_BUILD_PYTHON=ON",
                        "-DSAMS_BUILD_TESTS=OFF", "-DSAMS_BUILD_EXAMPLES=OFF", "-DSAMS_BUILD_BENCHMARKS=OFF",
                        "-DSAMS_INSTALL=OFF", f"-DSAMS_PYTHON_EXECUTABLE={sys.executable}"], check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")
        subprocess.run(["cmake", "--build", build_dir, "--target", "sams_python", "-j", jobs], check=True)
        built = os.path.join(build_dir, "python", "sams")
        target = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(built):
            if name.startswith("_sams") and name.endswith(".so"):
                shutil.copy2(os.path.join(built, name), self.get_ext_fullpath(ext.name))


setup(
    name="sams",
    version=version(),
    description="SamS adaptive batch-wise sample scheduling for DPO (C++ core, pybind11 binding)",
    license="MIT",
    packages=["sams"],
    package_data={"sams": ["__init__.pyi", "py.typed"]},
    ext_modules=[Extension("sams._sams", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.8",
    install_requires=["numpy"],
    zip_safe=False,
)
