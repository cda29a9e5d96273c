"""The driver core on asyncio: scheduling and waiting with the event loop.

:class:`AsyncioDriver` is the :class:`wsframe.driver.DriverCore` as an
:class:`asyncio.BufferedProtocol`: the event loop reads into the core's
shared buffer and calls it synchronously, timers are the loop's, and a
coroutine waits for a message (:meth:`~AsyncioDriver.next_message`) or for
the write buffer to drain (:meth:`~AsyncioDriver.wait_drained`) on a future
that the core's wake-ups resolve. :class:`wsframe.asyncio.WebSocket` (the
application's API) and :class:`wsframe.uvicorn.WSFrameProtocol` (ASGI) are
built on it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from ..driver import DriverCore
from ..state import State
from ..typing import Data

if TYPE_CHECKING:
    from ..connection import Connection
    from ..counters import Counters
    from .connection import Listener

__all__ = ["AsyncioDriver", "Message"]

Message = Data


class AsyncioDriver(DriverCore, asyncio.BufferedProtocol):
    """The driver core on an asyncio event loop (uvloop included)."""

    __slots__ = ("loop",)

    def __init__(
        self,
        conn: Connection,
        listener: Optional[Listener] = None,
        counters: Optional[Counters] = None,
    ) -> None:
        super().__init__(conn, listener, counters)
        #: The event loop, from ``connection_made`` on.
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport is up (any asyncio or uvloop transport)."""
        self.loop = asyncio.get_running_loop()
        super().connection_made(transport)

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop (the running one before ``connection_made``)."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        return self.loop

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` in a later iteration of the loop."""
        self.event_loop().call_soon(callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run ``callback()`` after ``delay`` seconds."""
        return self.event_loop().call_later(delay, callback)

    def reader_woken(self) -> asyncio.Future[None]:
        """A future resolved by the next :meth:`wake_reader`: await it to wait for a
        message, or the end (a cancelled wait leaves a done future, which the
        core skips)."""
        loop = self.loop
        waiter = self.reader_waiter = (loop or self.event_loop()).create_future()
        return waiter

    async def next_message(self) -> Message:
        """Wait for the next message of the inbox.

        Raises the :class:`~wsframe.errors.ConnectionClosed` that describes
        the end once the connection is closed and the inbox is empty.
        """
        while True:
            message = self.take_message()
            if message is not None:
                return message
            if self.draining or (
                self.transport is None and self.conn.state is not State.CONNECTING
            ):
                raise self.closed_error()
            await self.reader_woken()

    async def wait_drained(self) -> None:
        """Wait until the write buffer is below its high-water mark (or the transport
        is gone)."""
        while self.writing_paused and self.transport is not None:
            waiter = self.writer_waiter
            if waiter is None or waiter.done():
                waiter = self.writer_waiter = self.event_loop().create_future()
            await asyncio.shield(waiter)
