"""Free threading: objects shared between threads stay memory-safe and intact.

Runs on every interpreter (with the GIL it checks the locking logic; on a
free-threaded build, 3.13t/3.14t, the threads really run at once):

* several threads feed one ``FrameDecoder`` at once (both codecs): whole
  frames per call come out intact, split frames may interleave into garbage
  or a ``ProtocolError`` but never crash, and readers of the partial payload
  run meanwhile;
* several threads send on one ``wsframe.sync`` connection, and on one
  ``wsframe.asyncio`` connection through ``asyncio.run_coroutine_threadsafe``
  (its documented way in from another thread): the peer receives every
  message intact, each thread's in its order;
* on a free-threaded build, importing every ``wsframe`` module leaves the GIL
  disabled.

Every test is bounded in time (joins and waits with timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pkgutil
import random
import subprocess
import sys
import sysconfig
import threading
import types
import zlib
from typing import Any

import pytest
from sync_helpers import STEP, running, uri

import wsframe
import wsframe.asyncio
import wsframe.sync
from wsframe.errors import ProtocolError

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
THREADS = 4
#: How long a test may wait for its threads, in seconds.
DEADLINE = 60.0


def _run_threads(target: Any, count: int = THREADS) -> list[BaseException]:
    """Run ``target(index, barrier)`` in ``count`` threads; return their exceptions."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            target(index, barrier)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive(), "a thread did not finish in time"
    return errors


def _message(thread: int, seq: int, binary: bool) -> Any:
    """A message that says who sent it, its number, and carries a checksum."""
    rng = random.Random(thread * 100_003 + seq)
    size = rng.choice((0, 1, 7, 125, 126, 1000, 70_000))
    body = "".join(rng.choice("abcdé€𝄞") for _ in range(size // 4))
    text = f"{thread}:{seq}:{zlib.crc32(body.encode())}:{body}"
    return text.encode() if binary else text


def _check_message(message: Any) -> tuple[int, int]:
    text = message.decode() if isinstance(message, bytes) else message
    thread, seq, crc, body = text.split(":", 3)
    assert zlib.crc32(body.encode()) == int(crc), "a message arrived corrupted"
    assert isinstance(message, bytes) == bool(int(seq) % 2), "text and binary swapped"
    return int(thread), int(seq)


def _check_all(received: list[Any], per_thread: int) -> None:
    order: dict[int, list[int]] = {}
    for message in received:
        thread, seq = _check_message(message)
        order.setdefault(thread, []).append(seq)
    assert sorted(order) == list(range(THREADS))
    for seqs in order.values():
        assert seqs == list(range(per_thread)), "a thread's messages arrived out of order"


# --------------------------------------------------------------- the decoder


def _masked_frame(codec: types.ModuleType, payload: bytes, rng: random.Random) -> bytes:
    key = bytes(rng.randrange(256) for _ in range(4))
    return codec.encode_frame(2, payload, mask=key)


class TestSharedDecoder:
    def test_whole_frames_from_many_threads_arrive_intact(self, codec: types.ModuleType) -> None:
        decoder = codec.FrameDecoder("server", max_frame_size=None)
        per_thread = 300
        results: list[list[Any]] = [[] for _ in range(THREADS)]

        def feed(index: int, barrier: threading.Barrier) -> None:
            rng = random.Random(index)
            barrier.wait(STEP)
            for seq in range(per_thread):
                payload = f"{index}:{seq}:".encode() * rng.choice((1, 10, 3000))
                results[index] += decoder.feed(_masked_frame(codec, payload, rng))

        assert _run_threads(feed) == []
        for index, frames in enumerate(results):
            assert len(frames) == per_thread
            for seq, frame in enumerate(frames):
                unit = f"{index}:{seq}:".encode()
                assert frame.opcode == 2 and frame.fin
                assert frame.payload and frame.payload == unit * (len(frame.payload) // len(unit))
        assert decoder.buffered == 0 and decoder.partial is None

    def test_split_frames_from_many_threads_do_not_crash(self, codec: types.ModuleType) -> None:
        # Frames split across calls from different threads interleave: the
        # decoder may see garbage and fail, but must stay memory-safe (the
        # partial payload is never freed twice nor read while resized).
        for round_ in range(20):
            self._split_round(codec, round_)

    @staticmethod
    def _split_round(codec: types.ModuleType, round_: int) -> None:
        decoder = codec.FrameDecoder("server", max_frame_size=1 << 20)
        stop = threading.Event()

        def feed(index: int, barrier: threading.Barrier) -> None:
            rng = random.Random(round_ * 31 + index)
            stream = b"".join(
                _masked_frame(codec, bytes([index]) * rng.choice((5, 200, 70_000)), rng)
                for _ in range(10)
            )
            barrier.wait(STEP)
            pos = 0
            while pos < len(stream):
                step = rng.choice((1, 2, 3, 50, 4096, 65536))
                try:
                    frames = decoder.feed(memoryview(stream)[pos : pos + step])
                except ProtocolError:
                    return
                for frame in frames:
                    assert isinstance(frame, codec.Frame)
                pos += step

        def watch() -> None:
            while not stop.is_set():
                decoder.partial_payload(0)
                decoder.partial_payload(3)
                _ = decoder.partial, decoder.partial_length, decoder.buffered

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            assert _run_threads(feed) == []
        finally:
            stop.set()
            watcher.join(DEADLINE)
        assert not watcher.is_alive()
        # Still usable: either failed for good, or it keeps decoding.
        with contextlib.suppress(ProtocolError):
            decoder.feed(b"")

    def test_shared_utf8_validator(self, codec: types.ModuleType) -> None:
        validator = codec.Utf8Validator()
        valid = "é€𝄞 ascii".encode() * 100

        def feed(index: int, barrier: threading.Barrier) -> None:
            barrier.wait(STEP)
            for _ in range(2000):
                # Interleaved results are meaningless; only the object's
                # safety (and the return type) is checked.
                assert validator.feed(valid, final=bool(index % 2)) in (True, False)
                validator.reset()

        assert _run_threads(feed) == []
        validator.reset()
        assert validator.feed(valid, final=True) is True


class TestMaskKeys:
    @pytest.mark.parametrize("module", ["wsframe._connection_py", "wsframe._connection_c"])
    def test_one_pool_from_many_threads(self, module: str) -> None:
        # Every client connection of the process cuts its masking keys from
        # one pooled buffer: shared by all threads, so it is locked.
        if module.endswith("_c") and wsframe.implementation != "c":
            pytest.skip("the compiled modules are not in use")
        pool = __import__(module, fromlist=["_mask_keys"])._mask_keys
        keys: list[list[bytes]] = [[] for _ in range(THREADS)]

        def take(index: int, barrier: threading.Barrier) -> None:
            barrier.wait(STEP)
            keys[index] += [pool.next() for _ in range(20_000)]

        assert _run_threads(take) == []
        every = [key for chunk in keys for key in chunk]
        assert len(every) == THREADS * 20_000
        assert all(type(key) is bytes and len(key) == 4 for key in every)


# ------------------------------------------------------- sending from threads


class TestSendFromThreads:
    PER_THREAD = 150

    def test_sync_connection(self) -> None:
        received: list[Any] = []
        done = threading.Event()

        def collect(ws: Any) -> None:
            for message in ws:
                received.append(message)
            done.set()

        with (
            running(collect) as server,
            wsframe.sync.connect(uri(server), proxy=None, open_timeout=STEP) as ws,
        ):

            def send(index: int, barrier: threading.Barrier) -> None:
                barrier.wait(STEP)
                for seq in range(self.PER_THREAD):
                    ws.send(_message(index, seq, binary=bool(seq % 2)))

            assert _run_threads(send) == []
            ws.close()
            assert done.wait(DEADLINE)
        _check_all(received, self.PER_THREAD)

    def test_asyncio_connection(self) -> None:
        received: list[Any] = []
        done = threading.Event()

        def collect(ws: Any) -> None:
            for message in ws:
                received.append(message)
            done.set()

        loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
        loop_thread.start()
        try:
            with running(collect) as server:

                async def open_() -> Any:
                    return await wsframe.asyncio.connect(uri(server), proxy=None)

                async def send_one(message: Any) -> None:
                    await ws.send(message)

                ws = asyncio.run_coroutine_threadsafe(open_(), loop).result(STEP)

                def send(index: int, barrier: threading.Barrier) -> None:
                    barrier.wait(STEP)
                    for seq in range(self.PER_THREAD):
                        message = _message(index, seq, binary=bool(seq % 2))
                        # The documented way in from another thread: the
                        # coroutine runs on the connection's loop.
                        asyncio.run_coroutine_threadsafe(send_one(message), loop).result(STEP)

                assert _run_threads(send) == []

                async def close() -> None:
                    await ws.close()

                asyncio.run_coroutine_threadsafe(close(), loop).result(STEP)
                assert done.wait(DEADLINE)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join(STEP)
            loop.close()
        _check_all(received, self.PER_THREAD)


# ------------------------------------------------------------------ the GIL


def _all_modules() -> list[str]:
    names = ["wsframe"]
    for info in pkgutil.walk_packages(wsframe.__path__, "wsframe."):
        names.append(info.name)
    return names


@pytest.mark.skipif(not FREE_THREADED, reason="only a free-threaded build can keep the GIL off")
def test_gil_stays_disabled_after_importing_every_module() -> None:
    code = (
        "import importlib, sys\n"
        f"names = {_all_modules()!r}\n"
        "for name in names:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        if (exc.name or '').startswith('wsframe'):\n"
        "            raise\n"  # a missing optional dependency is fine
        "import wsframe\n"
        "print(wsframe.implementation, sys._is_gil_enabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    implementation, gil = result.stdout.split()
    assert gil == "False", f"importing wsframe re-enabled the GIL: {result.stderr}"
    assert implementation == wsframe.implementation
