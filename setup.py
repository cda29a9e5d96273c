"""Builds the optional C extension ``wsframe._codec_c``.

* ``WSFRAME_NO_EXTENSIONS=1``: do not compile; the pure-Python codec is used.
* ``WSFRAME_REQUIRE_EXTENSIONS=1``: a failed compile is an error (CI, wheels).
* ``WSFRAME_SANITIZE=1``: build with AddressSanitizer and UBSan (tests only).
* Otherwise a missing or failing compiler (or missing Cython) only warns, and
  the package installs as pure Python.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("WSFRAME_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("WSFRAME_REQUIRE_EXTENSIONS")
SANITIZE = _flag("WSFRAME_SANITIZE")
WARNING = (
    "\n*** wsframe: the C extension could not be built ({reason}).\n"
    "*** wsframe is installed in pure Python: same API, much slower.\n"
)


def _warn(reason: str) -> None:
    sys.stderr.write(WARNING.format(reason=reason))
    sys.stderr.flush()


class OptionalBuildExt(build_ext):
    """A build_ext whose failure degrades to pure Python instead of failing."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, broken toolchain, ...
            if REQUIRE_EXTENSIONS:
                raise
            _warn(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXTENSIONS:
                raise
            _warn(f"{type(exc).__name__}: {exc}")


def _compile_args() -> tuple[list[str], list[str]]:
    if sys.platform == "win32" and "GCC" not in sys.version:
        return ["/O2"], []
    args = ["-O3", "-fno-strict-aliasing"]
    link: list[str] = []
    if SANITIZE:
        args = [
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
        ]
        link = ["-fsanitize=address,undefined"]
    return args, link


def _extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        _warn("Cython is not installed")
        return []
    compile_args, link_args = _compile_args()
    ext = Extension(
        "wsframe._codec_c",
        sources=["wsframe/_codec_c.pyx", "csrc/mask.c", "csrc/utf8.c"],
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    return cythonize(
        [ext],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
