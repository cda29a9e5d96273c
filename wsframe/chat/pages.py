"""The chat's HTTP side: the page and its assets, with security headers.

:class:`Pages` is a ``process_request`` for :func:`wsframe.asyncio.serve`: it
answers the files of ``wsframe/demo`` and lets the WebSocket path through.
"""

from __future__ import annotations

from importlib import resources
from typing import Optional

from ..asyncio import WebSocket
from ..handshake import HTTPAnswer, Request

__all__ = ["SECURITY_HEADERS", "Pages"]

#: Path -> (file in ``wsframe/demo``, content type).
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/chat.css": ("chat.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Everything comes from this server: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class Pages:
    """Serves the page and its assets (read once); ``websocket_path`` goes through; 404 else."""

    def __init__(self, websocket_path: str = "/ws") -> None:
        self.websocket_path = websocket_path
        self._files = {path: (_read(name), ctype) for path, (name, ctype) in FILES.items()}

    def __call__(self, ws: WebSocket, request: Request) -> Optional[HTTPAnswer]:
        if request.path == self.websocket_path:
            return None
        page = self._files.get(request.path)
        if page is None:
            return (404, {"Content-Type": "text/plain; charset=utf-8"}, "Not Found\n")
        if request.method != "GET":
            return (405, {"Allow": "GET"}, "Method Not Allowed\n")
        body, content_type = page
        return (200, {"Content-Type": content_type, **SECURITY_HEADERS}, body)


def _read(name: str) -> bytes:
    """A file of the page, shipped in ``wsframe/demo``."""
    return resources.files("wsframe.demo").joinpath(name).read_bytes()
