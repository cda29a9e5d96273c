"""Checks an installed wheel (cibuildwheel's test command runs it).

* every compiled module is in the wheel and in use (``wsframe.implementation``
  is ``"c"``), imported from site-packages, not from a source tree;
* on a free-threaded interpreter (3.14t), importing every compiled module
  leaves the GIL disabled: each declares itself free-threading compatible
  (a module that did not would re-enable it, with a ``RuntimeWarning``,
  which this script turns into an error).

Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
import warnings


def main() -> int:
    warnings.simplefilter("error", RuntimeWarning)
    import wsframe
    from wsframe._implementation import COMPILED_MODULES

    print(wsframe.__file__, wsframe.implementation, wsframe.SIMD_PATH)
    if wsframe.implementation != "c":
        print("the compiled modules are not in use", file=sys.stderr)
        return 1
    if "site-packages" not in wsframe.__file__:
        print("wsframe was not imported from the installed wheel", file=sys.stderr)
        return 1
    for name in COMPILED_MODULES:
        module = importlib.import_module(f"wsframe.{name}_c")
        if not module.__file__ or module.__file__.endswith(".py"):
            print(f"wsframe.{name}_c is not compiled: {module.__file__}", file=sys.stderr)
            return 1
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        gil = sys._is_gil_enabled()  # type: ignore[attr-defined]
        print("free-threaded build; GIL enabled after import:", gil)
        if gil:
            print("importing wsframe re-enabled the GIL", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
