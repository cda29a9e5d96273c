"""The chat history: an embedded SQLite database (standard library ``sqlite3``).

Writes run inline on the event loop: an ``INSERT`` into a WAL-mode database
costs a few microseconds, and the commits are grouped — one per
``commit_delay`` seconds at most — so a busy room does not pay an ``fsync``
per message. The last messages of each room are also kept in memory, so a
join's history replay does not touch the disk after the first one.
"""

from __future__ import annotations

import collections
import os
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

__all__ = ["DEFAULT_HISTORY", "HistoryStore", "StoredMessage", "default_db_path"]

#: Messages replayed when joining a room.
DEFAULT_HISTORY = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT    NOT NULL,
    nick TEXT    NOT NULL,
    text TEXT    NOT NULL,
    ts   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
"""


class StoredMessage(NamedTuple):
    """One room message: its id (increasing), room, sender, text, server time (ms)."""

    id: int
    room: str
    nick: str
    text: str
    ts: int

    def as_dict(self) -> dict[str, Union[int, str]]:
        """The fields of a ``message`` in the protocol."""
        return {
            "id": self.id,
            "room": self.room,
            "from": self.nick,
            "text": self.text,
            "ts": self.ts,
        }


def default_db_path() -> Path:
    """Where the history lives by default, following each platform's convention.

    ``%LOCALAPPDATA%\\wsframe`` on Windows, ``~/Library/Application
    Support/wsframe`` on macOS, ``$XDG_DATA_HOME/wsframe`` (default
    ``~/.local/share/wsframe``) elsewhere; the file is ``chat.sqlite3``.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "wsframe" / "chat.sqlite3"


class HistoryStore:
    """Room messages in SQLite, with the last ``history`` of each room cached in memory.

    ``path`` is a file (its directory is created) or ``":memory:"``. Call
    :meth:`commit` periodically (the server does it at most ``commit_delay``
    after a write) and :meth:`close` at the end.

    ``shared=True`` is for one file used by several processes (``chat
    --workers``): each write is committed at once (in WAL mode that is an
    append, without ``fsync``) so that it neither holds the write lock nor
    hides from the other processes, and :meth:`recent` reads the file
    instead of a cache that other processes' writes would make stale.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        history: int = DEFAULT_HISTORY,
        *,
        shared: bool = False,
    ) -> None:
        self.path = str(path)
        self.history = history
        self.shared = shared
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Another process's write holds the lock for microseconds (shared
        # mode commits at once): wait for it briefly rather than fail.
        self._db = sqlite3.connect(
            self.path, isolation_level="DEFERRED", timeout=1.0 if shared else 5.0
        )
        self._initialise()
        self._recent: dict[str, collections.deque[StoredMessage]] = {}
        self.dirty = False

    def _initialise(self) -> None:
        """WAL mode and the schema, retried while another worker does the same.

        Workers started together open one new file at once; SQLite then
        answers "database is locked" at once (not after the busy timeout) to
        one of them to avoid a deadlock, and PyPy's sqlite3 may report that
        the schema another worker just created "has changed" under a prepared
        statement. This runs once, before serving, so a short blocking retry
        is fine.
        """
        deadline = time.monotonic() + 10.0
        while True:
            try:
                if self.path != ":memory:":
                    self._query("PRAGMA journal_mode=WAL")
                    self._query("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if not any(
                    transient in str(exc) for transient in ("locked", "busy", "schema has changed")
                ):
                    raise
                if time.monotonic() > deadline:
                    raise
                self._db.rollback()
                time.sleep(0.02 + random.random() * 0.05)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement and return its rows, the statement finished at once.

        Every cursor is closed explicitly: without reference counting (PyPy)
        a dropped cursor keeps its statement active until the garbage
        collector runs, and SQLite refuses to COMMIT while a statement is in
        progress ("cannot commit transaction - SQL statements in progress").
        """
        cursor = self._db.execute(sql, params)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def add(self, room: str, nick: str, text: str, ts: Optional[int] = None) -> StoredMessage:
        """Store a message (committed by the next :meth:`commit`) and return it."""
        if ts is None:
            ts = int(time.time() * 1000)
        cursor = self._db.execute(
            "INSERT INTO messages (room, nick, text, ts) VALUES (?, ?, ?, ?)",
            (room, nick, text, ts),
        )
        try:
            rowid = cursor.lastrowid
        finally:
            cursor.close()  # see _query
        message = StoredMessage(int(rowid or 0), room, nick, text, ts)
        if self.shared:
            self._db.commit()
            return message
        self._cache(room).append(message)
        self.dirty = True
        return message

    def recent(self, room: str) -> list[StoredMessage]:
        """The last ``history`` messages of ``room``, oldest first."""
        return list(self._cache(room))

    def rooms(self, limit: int = 50) -> list[str]:
        """The rooms with history, most recently active first."""
        rows = self._query(
            "SELECT room FROM messages GROUP BY room ORDER BY MAX(id) DESC LIMIT ?", (limit,)
        )
        return [row[0] for row in rows]

    def _cache(self, room: str) -> collections.deque[StoredMessage]:
        cache = self._recent.get(room)
        if cache is None or self.shared:
            rows = self._query(
                "SELECT id, room, nick, text, ts FROM messages WHERE room = ?"
                " ORDER BY id DESC LIMIT ?",
                (room, self.history),
            )
            cache = collections.deque(
                (StoredMessage(*row) for row in reversed(rows)), maxlen=self.history
            )
            if not self.shared:
                self._recent[room] = cache
        return cache

    def forget(self, room: str) -> None:
        """Drop the in-memory copy of ``room`` (e.g. when nobody is in it any more)."""
        self._recent.pop(room, None)

    def commit(self) -> None:
        """Commit the pending writes."""
        if self.dirty:
            self._db.commit()
            self.dirty = False

    def close(self) -> None:
        """Commit and close the database."""
        self.commit()
        self._db.close()
