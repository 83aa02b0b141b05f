"""HEAD for every GET (RFC 9110 9.3.2): the same status and headers, no body.

FastAPI's routes answer only the methods they declare, so ``HEAD /healthz`` -- what uptime
checkers and load balancers send -- was a 405. This ASGI middleware runs a HEAD as the GET it
stands for and drops the body it produces; the headers (Content-Length included) stay those of
the GET. Other methods pass through untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of the body follows: say nothing yet
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


__all__ = ["HeadAsGet"]
