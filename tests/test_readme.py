"""Every Python example in the README runs as written.

An example that uses ``PROXY`` runs against a tinyproxy started for it (the
example reads the ``PROXY`` environment variable); it is skipped, saying
so, when tinyproxy is not installed.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = compile(BLOCKS[index], f"README.md example {index + 1}", "exec")
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with contextlib.ExitStack() as stack:
        if "PROXY" in BLOCKS[index]:
            from proxy_servers import tinyproxy

            monkeypatch.setenv("PROXY", stack.enter_context(tinyproxy(tmp_path)))
        exec(code, {"__name__": f"readme_example_{index + 1}"})
