"""Options: one frozen, validated record for every connection setting."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from wsframe.connection import ClientConnection, ServerConnection
from wsframe.options import Options, OptionsDict
from wsframe.ratelimit import TokenBucket


def test_the_keyword_form_names_exactly_the_fields() -> None:
    fields = {field.name for field in dataclasses.fields(Options)}
    assert set(typing.get_type_hints(OptionsDict)) == fields


def test_build_applies_overrides_and_keeps_the_base() -> None:
    base = Options(max_message_size=10, compression=None)
    built = Options.build(base, max_queue=3)
    assert (built.max_message_size, built.compression, built.max_queue) == (10, None, 3)
    assert base.max_queue == 16 and Options.build(base) is base
    assert Options.build(ping_interval=0).heartbeat is None
    assert Options.build(ping_interval=5, ping_timeout=None).heartbeat == (5, 5)


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        Options.build(max_mesage_size=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unknown option"):
        ServerConnection(max_mesage_size=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_message_size", -1),
        ("compression", "gzip"),
        ("max_ping_rate", 0),
        ("max_ping_burst", 0),
        ("max_headers", 0),
        ("max_body", -1),
        ("max_queue", 0),
        ("write_limit", -1),
        ("ping_interval", -1),
        ("ping_timeout", 0),
        ("open_timeout", 0),
        ("close_timeout", 0),
    ],
)
def test_invalid_values_are_refused_when_the_record_is_made(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        Options(**{name: value})  # type: ignore[arg-type]


def test_the_record_is_immutable_and_copies_what_it_is_given() -> None:
    subprotocols = ["chat"]
    deflate = {"server_no_context_takeover": True}
    options = Options(subprotocols=subprotocols, deflate_options=deflate)  # type: ignore[arg-type]
    subprotocols.append("other")
    deflate["server_max_window_bits"] = 9  # type: ignore[assignment]
    assert options.subprotocols == ("chat",)
    assert dict(options.deflate_options) == {"server_no_context_takeover": True}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_queue = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Options(subprotocols="chat")  # type: ignore[arg-type]


def test_connections_share_one_record() -> None:
    options = Options(max_message_size=123, subprotocols=("chat",))
    server = ServerConnection(options)
    client = ClientConnection("ws://example.com/", options)
    assert server.options is options and client.options is options
    assert server.max_message_size == client.max_message_size == 123
    assert "Sec-WebSocket-Protocol: chat" in client.data_to_send().decode()


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] += 60  # refills up to the burst, no more
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0.5)
