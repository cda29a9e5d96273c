"""The chat's HTTP side: the page and its assets, with security headers.

:class:`Pages` is a ``process_request`` for :func:`wsframe.asyncio.serve`: it
answers the files of ``wsframe/demo`` and lets the WebSocket path through.
Given the server's counters it also serves ``/stats`` (a live dashboard),
``/stats.json`` (what the dashboard polls) and ``/metrics`` (Prometheus'
text format, with the optional ``prometheus_client``:
``pip install wsframe[metrics]``).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any, Callable, Optional

from ..asyncio import WebSocket
from ..handshake import HTTPAnswer, Request
from ..stats import Stats

__all__ = ["SECURITY_HEADERS", "Pages"]

#: Path -> (file in ``wsframe/demo``, content type).
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/chat.css": ("chat.css", "text/css; charset=utf-8"),
    "/stats": ("stats.html", "text/html; charset=utf-8"),
    "/stats.js": ("stats.js", "text/javascript; charset=utf-8"),
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
    """Serves the page and its assets (read once); ``websocket_path`` goes through; 404 else.

    ``stats`` returns the server's :class:`~wsframe.stats.Stats` (None while
    it is not serving): with it, ``/stats.json`` and ``/metrics`` answer.
    ``metrics`` is what ``/metrics`` collects (see
    :class:`wsframe.metrics.Collector`; default: ``stats``).
    """

    def __init__(
        self,
        websocket_path: str = "/ws",
        stats: Optional[Callable[[], Optional[Stats]]] = None,
        metrics: Any = None,
    ) -> None:
        self.websocket_path = websocket_path
        self.stats = stats
        self._files = {path: (_read(name), ctype) for path, (name, ctype) in FILES.items()}
        self._metrics = None
        if stats is not None:
            self._metrics = _metrics_endpoint(metrics if metrics is not None else _by_side(stats))

    def __call__(self, ws: WebSocket, request: Request) -> Optional[HTTPAnswer]:
        if request.path == self.websocket_path:
            return None
        if request.path == "/stats.json" and self.stats is not None:
            return self._stats_json()
        if request.path == "/metrics" and self.stats is not None:
            if self._metrics is None:
                return (
                    501,
                    {"Content-Type": "text/plain; charset=utf-8"},
                    "/metrics needs prometheus_client: pip install wsframe[metrics]\n",
                )
            return self._metrics(ws, request)  # type: ignore[no-any-return]
        page = self._files.get(request.path)
        if page is None:
            return (404, {"Content-Type": "text/plain; charset=utf-8"}, "Not Found\n")
        if request.method != "GET":
            return (405, {"Allow": "GET"}, "Method Not Allowed\n")
        body, content_type = page
        return (200, {"Content-Type": content_type, **SECURITY_HEADERS}, body)

    def _stats_json(self) -> HTTPAnswer:
        assert self.stats is not None
        stats = self.stats()
        if stats is None:
            return (503, {"Content-Type": "text/plain; charset=utf-8"}, "Not serving\n")
        body = {
            "time": time.time(),
            "connections_open": stats.connections_open,
            "connections_accepted": stats.connections_accepted,
            "messages_received": stats.messages_received,
            "messages_sent": stats.messages_sent,
            "bytes_received": stats.bytes_received,
            "bytes_sent": stats.bytes_sent,
            "ping_rtt_count": stats.ping_rtt.count,
            "ping_rtt_sum": stats.ping_rtt.sum,
        }
        headers = {"Content-Type": "application/json", **SECURITY_HEADERS}
        return (200, headers, json.dumps(body))


def _by_side(stats: Callable[[], Optional[Stats]]) -> Callable[[], dict[str, Stats]]:
    def read() -> dict[str, Stats]:
        current = stats()
        return {"server": current} if current is not None else {}

    return read


def _metrics_endpoint(source: Any) -> Optional[Callable[..., Any]]:
    """``/metrics`` for ``source``, or None without prometheus_client."""
    try:
        from ..metrics import metrics_endpoint, new_registry
    except ImportError:
        return None
    return metrics_endpoint(registry=new_registry(source))


def _read(name: str) -> bytes:
    """A file of the page, shipped in ``wsframe/demo``."""
    return resources.files("wsframe.demo").joinpath(name).read_bytes()
