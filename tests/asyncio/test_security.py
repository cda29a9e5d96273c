"""Security review (docs/security.md): the claims no other test module covered.

Each test is named in ``docs/security.md`` next to the claim it proves.
Every Python example of ``docs/security.md`` runs as written, too.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from asyncio_helpers import async_test, start, within

from wsframe.asyncio import WebSocket, connect
from wsframe.errors import InvalidHandshake

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
BLOCKS = re.findall(r"```python\n(.*?)```", SECURITY_MD.read_text(encoding="utf-8"), re.DOTALL)


def test_security_doc_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_security_doc_example_runs(index: int) -> None:
    code = compile(BLOCKS[index], f"docs/security.md example {index + 1}", "exec")
    exec(code, {"__name__": f"security_example_{index + 1}"})


def test_security_doc_names_only_existing_tests() -> None:
    # Every "tests/FILE.py::NAME" the document cites exists.
    text = SECURITY_MD.read_text(encoding="utf-8")
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(cited) >= 30
    root = SECURITY_MD.parent.parent
    for path, name in sorted(cited):
        source = (root / path).read_text(encoding="utf-8")
        assert re.search(rf"^(?:async )?def {name}\(", source, re.M) or re.search(
            rf"^    def {name}\(", source, re.M
        ), f"{path}::{name} is cited by docs/security.md but does not exist"


# ------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, Any]:
    """``(server_context, ca)``: a certificate for ``localhost`` only, from a test CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    return server_context, ca


async def _echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@async_test
async def test_wss_client_checks_the_host_name(tls: tuple[ssl.SSLContext, Any]) -> None:
    # A trusted certificate for another name is refused: the client's context
    # verifies the chain and the host name (ssl.create_default_context()).
    server_context, ca = tls
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    assert client_context.check_hostname
    assert client_context.verify_mode is ssl.CERT_REQUIRED
    async with await start(_echo, ssl=server_context) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
            await within(connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context))
        async with connect(
            f"wss://127.0.0.1:{server.port}/", ssl=client_context, server_hostname="localhost"
        ) as ws:
            await ws.send("over TLS")
            assert await within(ws.recv()) == "over TLS"


@async_test
async def test_wss_default_context_refuses_an_unknown_ca(tls: tuple[ssl.SSLContext, Any]) -> None:
    # wss:// without ssl=: the default context, which trusts the system CAs only.
    server_context, _ = tls
    async with await start(_echo, ssl=server_context) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await within(connect(f"wss://127.0.0.1:{server.port}/", server_hostname="localhost"))


def test_ssl_on_a_ws_uri_is_refused() -> None:
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/", ssl=ssl.create_default_context())


@async_test
async def test_origins_over_wss(tls: tuple[ssl.SSLContext, Any]) -> None:
    # The origin policy is the same over TLS.
    server_context, ca = tls
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with await start(_echo, ssl=server_context, origins=["https://app.example"]) as server:
        url = f"wss://127.0.0.1:{server.port}/"

        with pytest.raises(InvalidHandshake) as info:
            await within(
                connect(
                    url,
                    ssl=client_context,
                    server_hostname="localhost",
                    origin="https://evil.example",
                )
            )
        assert info.value.status == 403
        async with connect(
            url, ssl=client_context, server_hostname="localhost", origin="https://app.example"
        ) as ws:
            await ws.send("hi")
            assert await within(ws.recv()) == "hi"
