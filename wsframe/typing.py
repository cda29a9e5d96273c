"""The type aliases of wsframe's public API, in one place.

``Data`` is what a connection delivers; ``DataLike`` what it sends (a
``str`` as a text message, a bytes-like object as a binary one). Every object
with the buffer protocol (``array.array``, a NumPy array...) is sent as
binary too; the annotations name the common ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Union

__all__ = ["BytesLike", "Data", "DataLike", "Fragments"]

#: A bytes-like payload.
BytesLike = Union[bytes, bytearray, memoryview]
#: A received message: ``str`` for text, ``bytes`` for binary.
Data = Union[str, bytes]
#: A message to send: ``str`` as text, bytes-like as binary.
DataLike = Union[str, BytesLike]
#: A fragmented message to send: an (async) iterable of ``str``, or of bytes-like.
Fragments = Union[Iterable[DataLike], AsyncIterable[DataLike]]
