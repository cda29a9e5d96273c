"""The codec benchmark tables with the peer libraries side by side.

``python bench/codec_table.py [--quick] [--json PATH]`` (or, from a source
checkout, ``python -m wsframe bench --peers``) prints the tables of
``python -m wsframe bench`` with a column for each of picows, aiohttp,
websockets, wsproto and wsaccel that is installed (``pip install
"wsframe[bench]"``); a missing peer shows "n/a" with the reason. The rows and
wsframe's own columns come from :mod:`wsframe.benchmarks`; how each peer does
each job is in :mod:`codec_peers.cases`.
"""

from __future__ import annotations

from .cases import SUITE, groups, libraries, make_runner, unavailable

__all__ = ["SUITE", "groups", "libraries", "make_runner", "unavailable"]
