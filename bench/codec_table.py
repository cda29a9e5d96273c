"""The codec benchmark tables, wsframe's codecs next to the installed peers.

    python bench/codec_table.py --quick
    python bench/codec_table.py --json results.json

The same tables, options and JSON as ``python -m wsframe bench``, plus a
column per peer library (see :mod:`codec_peers`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import wsframe  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsframe.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--peers", *sys.argv[1:]]))
