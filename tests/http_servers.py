"""Real local HTTP(S) servers for the http probe tests: uvicorn on 127.0.0.1, port 0, in a thread.

Certificates come from a throw-away CA made with ``cryptography``; every server binds
127.0.0.1 only and is stopped by the fixture that started it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BIG_BODY = b"x" * (200 * 1024) + b"TAIL-MARKER"


class App:
    """A tiny ASGI app. ``status`` is what ``/toggle`` answers (tests change it)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        path, query = scope["path"], scope["query_string"].decode()
        if path == "/slow":
            await asyncio.sleep(float(query.removeprefix("delay=")))
        handler = ROUTES.get(path, _not_found)
        await handler(self, send)


async def _respond(
    send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _ok(app: App, send: Send) -> None:
    await _respond(send, 200, b"netmon ok: controller UI")


async def _fail(app: App, send: Send) -> None:
    await _respond(send, 500, b"internal error")


async def _toggle(app: App, send: Send) -> None:
    await _respond(send, app.status, f"status {app.status}".encode())


async def _chunked(app: App, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"first part, ", b"second ", b"part with MARK", b"ER at the end"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _big(app: App, send: Send) -> None:
    await _respond(send, 200, BIG_BODY)


async def _redirect(app: App, send: Send) -> None:
    await _respond(send, 302, b"", ((b"location", b"/ok?token=secret"),))


async def _loop(app: App, send: Send) -> None:
    await _respond(send, 302, b"", ((b"location", b"/loop"),))


async def _away(app: App, send: Send) -> None:
    await _respond(send, 301, b"", ((b"location", b"ftp://127.0.0.1/file"),))


async def _not_found(app: App, send: Send) -> None:
    await _respond(send, 404, b"not found")


ROUTES: dict[str, Callable[[App, Send], Awaitable[None]]] = {
    "/ok": _ok,
    "/slow": _ok,
    "/fail": _fail,
    "/toggle": _toggle,
    "/chunked": _chunked,
    "/big": _big,
    "/redirect": _redirect,
    "/loop": _loop,
    "/away": _away,
}


@dataclass
class Server:
    app: App
    port: int

    def url(self, path: str = "/ok", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def serve(certfile: Path | None = None, keyfile: Path | None = None) -> Iterator[Server]:
    """uvicorn on 127.0.0.1:0 in a thread (TLS when given a certificate); stopped on exit."""
    app = App()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):  # bounded: 10 s
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Server(app, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never sends a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path


def _name(cn: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netmon tests")]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_ca(directory: Path) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("netmon test CA"))
        .issuer_name(_name("netmon test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = directory / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, pem)


def issue(
    ca: Authority,
    directory: Path,
    name: str,
    *,
    not_after: dt.datetime,
    cn: str | None = "127.0.0.1",
) -> tuple[Path, Path, x509.Certificate]:
    """A server certificate for 127.0.0.1 signed by ``ca``; returns (cert file, key file, cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(not_after, dt.datetime.now(dt.UTC)) - dt.timedelta(days=10))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    certfile, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile, cert
