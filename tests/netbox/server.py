"""A local HTTP server that answers like NetBox 4's REST API over the fixture objects.

``GET /api/dcim/sites/`` and ``/api/dcim/devices/`` with ``tag``, ``limit`` and ``offset``,
paged as NetBox pages (``count``, ``next``, ``previous``, ``results``; at most
``max_page_size`` a page, NetBox's MAX_PAGE_SIZE), 403 ``{"detail": "Invalid token."}`` without
the right ``Authorization: Token ...``. Only 127.0.0.1, an ephemeral port, a daemon thread.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).with_name("fixtures")


def load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


class NetBox:
    def __init__(self, token: str, max_page_size: int = 100) -> None:
        self.token, self.max_page_size = token, max_page_size
        self.objects = {"dcim/sites": load("sites"), "dcim/devices": load("devices")}
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> NetBox:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def page(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        endpoint = path.strip("/").removeprefix("api/")
        if endpoint not in self.objects:
            return 404, {"detail": "Not found."}
        tag = query.get("tag", [None])[0]
        found = [o for o in self.objects[endpoint]
                 if tag is None or any(t["slug"] == tag for t in o["tags"])]  # fmt: skip
        limit = min(int(query.get("limit", ["50"])[0]), self.max_page_size)
        offset = int(query.get("offset", ["0"])[0])

        def link(at: int) -> str:
            q = {"limit": limit, "offset": at, **({"tag": tag} if tag else {})}
            return f"{self.url}{path}?{urllib.parse.urlencode(q)}"

        return 200, {"count": len(found),
                     "next": link(offset + limit) if offset + limit < len(found) else None,
                     "previous": link(max(0, offset - limit)) if offset else None,
                     "results": found[offset:offset + limit]}  # fmt: skip

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        netbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                netbox.requests += 1
                url = urllib.parse.urlsplit(self.path)
                if self.headers.get("Authorization") != f"Token {netbox.token}":
                    status, body = 403, {"detail": "Invalid token."}
                else:
                    status, body = netbox.page(url.path, urllib.parse.parse_qs(url.query))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
