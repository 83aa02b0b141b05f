"""HTTP(S) probe: one GET of a URL, judged by status, body, latency and TLS certificate.

A controller's web UI today; the hospital information system's URL from inside a site once
site agents exist. The inventory writes, on a device::

    http: {url: https://10.20.0.2/, ca_file: /etc/netmon/site-ca.pem, cert_min_days: 14}

Settings (:class:`HttpSettings`, unknown keys are errors): ``url`` (http or https, no
``user:password@``), ``expect_status`` (``200``, ``[200, 204]``, ``2xx`` or ``[2xx, 301]``),
``timeout`` (the one deadline of the whole check, redirects included), ``max_latency`` and
``cert_min_days`` (judged by the verdict rule, not here), ``verify_tls``, ``ca_file`` (a
private CA or a self-signed certificate; it *replaces* the system store), ``follow_redirects``
(at most :data:`MAX_REDIRECTS`), ``expect_body`` (a substring of the first
:data:`MAX_BODY` bytes).

Findings (:class:`HttpFindings`): a down endpoint is data (``ok=False``, an ``error`` class
and a ``reason``), never an exception. Latencies are seconds from the start of the check to the
final response's headers and to the end of its (bounded) body. The certificate's expiry is read
whether or not it is verified, so a self-signed controller UI probed with ``verify_tls: false``
still reports its days left. ``url`` in findings and reasons never carries a query string.

Why no HTTP library: the check needs the peer certificate of *this* connection (verified or
not), one deadline over connect, handshake and read, a bounded body read and no connection
pool; asyncio streams and :mod:`ssl` give exactly that in ~150 lines, and the only thing the
standard library lacks -- reading ``notAfter`` and the names from an unverified DER
certificate -- is a 40-line DER walk (:func:`parse_certificate`), cross-checked against
``cryptography`` in the tests. So the kind adds no runtime dependency (httpx stays test-only).
The request is HTTP/1.1 with ``Connection: close``; chunked bodies are decoded.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import SplitResult, urljoin, urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from netmon.schema import Int, Seconds, Strict
from probes.base import (
    DEVICE_LABELS,
    JobSpec,
    KindSite,
    Loc,
    ProbeKind,
    ProbeResult,
    Target,
    failed,
)

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site
    from netmon.window import DeviceSummary

MAX_BODY = 64 * 1024  # bytes of the body read (and searched for expect_body)
MAX_HEADERS = 64 * 1024  # bytes of status line plus headers
MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "netmon-http-probe"

ErrorClass = Literal[
    "dns", "connect", "timeout", "tls", "protocol", "redirect", "http_status", "body_mismatch"
]


# ---------------------------------------------------------------------------------------------
# Settings


def _status_patterns(value: object) -> object:
    """``200``, ``"2xx"`` or a list of them -> a list of strings (``["200"]``, ``["2xx"]``)."""
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or not _STATUS.match(text):
            raise ValueError(f"expected a status code like 200 or a class like 2xx, got {item!r}")
        out.append(text)
    return out


_STATUS = re.compile(r"^[1-5](\d\d|xx)$")


def check_url(url: str) -> SplitResult:
    """The parts of an http(s) URL; ValueError with a config-error message otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("URL scheme must be http or https")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not supported (they would show in the API)")
    return parts


class HttpSettings(Strict):
    """One device's ``http:`` key in the inventory."""

    url: str
    method: Literal["GET"] = "GET"
    expect_status: Annotated[
        tuple[str, ...], BeforeValidator(_status_patterns), Field(min_length=1)
    ] = ("200",)
    timeout: Seconds = 5.0
    max_latency: Seconds = 2.0
    cert_min_days: Int = Field(default=14, ge=0, le=3650)
    verify_tls: bool = True
    ca_file: Path | None = None
    follow_redirects: bool = False
    expect_body: str | None = Field(default=None, min_length=1, max_length=1024)
    interval: Seconds = 60.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_url(value)
        return value

    @model_validator(mode="after")
    def _tls_options(self) -> HttpSettings:
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file has no effect with verify_tls: false")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file}: no such file")
        return self

    def status_ok(self, code: int) -> bool:
        text = str(code)
        return any(p == text or (p.endswith("xx") and p[0] == text[0]) for p in self.expect_status)


# ---------------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True, slots=True)
class TlsFindings:
    """The server certificate of the final connection (read even when not verified)."""

    verified: bool  # the chain and host name were checked and passed
    not_after: float | None = None  # Unix seconds
    days_left: float | None = None  # negative once expired
    subject_cn: str = ""
    issuer_cn: str = ""
    verify_error: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TlsFindings:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class HttpFindings:
    """What one check of one URL found; latencies in seconds from the start of the check."""

    ok: bool
    url: str  # the final URL (after redirects), without query string
    status: int | None = None
    headers_latency: float | None = None
    total_latency: float | None = None
    redirects: int = 0
    body_bytes: int = 0  # bytes read, at most MAX_BODY
    tls: TlsFindings | None = None
    error: ErrorClass | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The store's JSON form: the fields by name, ``tls`` an object or null."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HttpFindings:
        values = _known(cls, data)
        tls = values.get("tls")
        values["tls"] = TlsFindings.from_json(tls) if isinstance(tls, Mapping) else None
        return cls(**values)


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls`` (a later version may add some)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


class _Failure(Exception):
    """A down endpoint, raised inside a check and turned into findings at its boundary."""

    def __init__(self, error: ErrorClass, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass
class _Progress:
    """What a check has done so far, so a timeout or failure can report it."""

    url: SplitResult
    phase: str = "connecting"
    started: float = field(default_factory=time.monotonic)
    status: int | None = None
    headers_at: float | None = None
    redirects: int = 0
    tls: TlsFindings | None = None


# ---------------------------------------------------------------------------------------------
# The engine


class HttpEngine:
    """Shared by every HTTP check of a process: TLS contexts per CA file, a concurrency bound.

    ``clock`` gives Unix time for certificate days left (injected for tests).
    """

    def __init__(self, *, max_in_flight: int = 32, clock: Callable[[], float] = time.time) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._contexts: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
        self.clock = clock

    def ssl_context(self, settings: HttpSettings) -> ssl.SSLContext:
        key = (settings.verify_tls, settings.ca_file)
        if key not in self._contexts:
            self._contexts[key] = _make_context(settings.verify_tls, settings.ca_file)
        return self._contexts[key]

    async def check(self, settings: HttpSettings) -> HttpFindings:
        async with self._slots:
            return await check(self, settings)

    async def close(self) -> None:
        self._contexts.clear()


def _make_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def check(engine: HttpEngine, settings: HttpSettings) -> HttpFindings:
    """GET ``settings.url`` under one deadline (``settings.timeout``); never raises for a
    down endpoint."""
    progress = _Progress(url=check_url(settings.url))
    try:
        async with asyncio.timeout(settings.timeout):
            status, body = await _follow(engine, settings, progress)
    except _Failure as exc:
        return _findings(progress, ok=False, error=exc.error, reason=exc.reason)
    except TimeoutError:
        reason = f"no answer within {settings.timeout:g}s ({progress.phase})"
        return _findings(progress, ok=False, error="timeout", reason=reason)
    return _judge(settings, progress, status, body)


def _judge(settings: HttpSettings, progress: _Progress, status: int, body: bytes) -> HttpFindings:
    total, size = time.monotonic() - progress.started, len(body)
    error: ErrorClass | None = None
    reason = ""
    if not settings.status_ok(status):
        error, reason = (
            "http_status",
            f"HTTP status {status}, expected {', '.join(settings.expect_status)}",
        )
    elif settings.expect_body and settings.expect_body.encode() not in body:
        error = "body_mismatch"
        reason = f"body does not contain {settings.expect_body!r} (first {size} bytes read)"
    return _findings(
        progress, ok=error is None, error=error, reason=reason, total=total, body_bytes=size
    )


def _findings(
    progress: _Progress,
    *,
    ok: bool,
    error: ErrorClass | None = None,
    reason: str = "",
    total: float | None = None,
    body_bytes: int = 0,
) -> HttpFindings:
    headers = progress.headers_at - progress.started if progress.headers_at else None
    return HttpFindings(
        ok=ok,
        url=safe_url(progress.url),
        status=progress.status,
        headers_latency=headers,
        total_latency=total,
        redirects=progress.redirects,
        body_bytes=body_bytes,
        tls=progress.tls,
        error=error,
        reason=reason,
    )


def safe_url(parts: SplitResult) -> str:
    """``scheme://host[:port]/path``: no credentials, no query string (it may hold tokens)."""
    return f"{parts.scheme}://{_netloc(parts)}{parts.path or '/'}"


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


async def _follow(
    engine: HttpEngine, settings: HttpSettings, progress: _Progress
) -> tuple[int, bytes]:
    """One request, then at most MAX_REDIRECTS more when ``follow_redirects`` is on."""
    while True:
        status, headers, body = await _request(engine, settings, progress)
        location = headers.get("location")
        if not (settings.follow_redirects and status in REDIRECT_CODES and location):
            return status, body
        if progress.redirects >= MAX_REDIRECTS:
            raise _Failure("redirect", f"more than {MAX_REDIRECTS} redirects")
        progress.url = _redirect_target(progress.url, location)
        progress.redirects += 1


def _redirect_target(current: SplitResult, location: str) -> SplitResult:
    try:
        return check_url(urljoin(current.geturl(), location))
    except ValueError as exc:
        raise _Failure("redirect", f"redirect to an unusable location: {exc}") from None


# ---------------------------------------------------------------------------------------------
# One request on one connection


async def _request(
    engine: HttpEngine, settings: HttpSettings, progress: _Progress
) -> tuple[int, dict[str, str], bytes]:
    url = progress.url
    reader, writer = await _connect(engine, settings, progress)
    try:
        progress.phase = "waiting for response headers"
        writer.write(_request_bytes(url))
        await writer.drain()
        status, headers = await _read_head(reader)
        progress.status, progress.headers_at = status, time.monotonic()
        progress.phase = "reading body"
        return status, headers, await _read_body(reader, headers)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _Failure("protocol", f"{_what(exc)} while {progress.phase}") from None
    finally:
        writer.transport.abort()  # bounded: no TLS close_notify exchange to wait for


def _what(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    if isinstance(exc, asyncio.LimitOverrunError):
        return f"response headers over {MAX_HEADERS} bytes"
    return f"connection error ({getattr(exc, 'strerror', None) or type(exc).__name__})"


async def _connect(
    engine: HttpEngine, settings: HttpSettings, progress: _Progress
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = progress.url
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    progress.phase, progress.tls = "connecting", None
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEADERS)
    except OSError as exc:
        raise _connect_failure(exc, host, port) from None
    if url.scheme == "https":
        progress.phase = "TLS handshake"
        try:
            await writer.start_tls(engine.ssl_context(settings), server_hostname=host)
        except BaseException as exc:
            writer.transport.abort()
            failure = _tls_failure(exc)
            if isinstance(failure, _Failure):
                progress.tls = TlsFindings(verified=False, verify_error=failure.reason)
            raise failure from None
        progress.tls = tls_findings(writer, engine.clock(), verified=settings.verify_tls)
    return reader, writer


def _connect_failure(exc: OSError, host: str, port: int) -> _Failure:
    if isinstance(exc, socket.gaierror):
        return _Failure("dns", f"cannot resolve {host}: {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError):
        return _Failure("connect", f"connection refused by {host}:{port}")
    return _Failure("connect", f"cannot connect to {host}:{port}: {exc.strerror or exc}")


def _tls_failure(exc: BaseException) -> BaseException:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Failure("tls", f"TLS certificate verify failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return _Failure("tls", f"TLS handshake failed: {exc.reason or exc}")
    if isinstance(exc, OSError | asyncio.IncompleteReadError):
        return _Failure("tls", "connection closed during the TLS handshake")
    return exc  # cancellation, timeout: not ours to translate


def _request_bytes(url: SplitResult) -> bytes:
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {_netloc(url)}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "strict")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _Failure("protocol", f"not an HTTP/1.x response: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """At most MAX_BODY bytes of the body (chunked, by Content-Length, or until close)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length", "")
    if length.isdigit():
        return await reader.readexactly(min(int(length), MAX_BODY))
    body = b""
    while len(body) < MAX_BODY and (data := await reader.read(MAX_BODY - len(body))):
        body += data
    return body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while len(body) < MAX_BODY:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _Failure("protocol", "malformed chunked body") from None
        if size == 0:
            break
        body += await reader.readexactly(min(size, MAX_BODY - len(body)))
        if len(body) < MAX_BODY:
            await reader.readexactly(2)  # the chunk's CRLF
    return body[:MAX_BODY]


# ---------------------------------------------------------------------------------------------
# The certificate


def tls_findings(writer: asyncio.StreamWriter, now: float, *, verified: bool) -> TlsFindings:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    if not der:
        return TlsFindings(verified=verified, verify_error="server sent no certificate")
    try:
        cert = parse_certificate(der)
    except ValueError as exc:
        return TlsFindings(verified=verified, verify_error=f"cannot read certificate: {exc}")
    return TlsFindings(
        verified=verified,
        not_after=cert.not_after,
        days_left=(cert.not_after - now) / 86400.0,
        subject_cn=cert.subject_cn,
        issuer_cn=cert.issuer_cn,
    )


@dataclass(frozen=True, slots=True)
class CertInfo:
    not_after: float  # Unix seconds
    subject_cn: str
    issuer_cn: str


_CN_OID = bytes.fromhex("550403")  # 2.5.4.3 commonName
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


def parse_certificate(der: bytes) -> CertInfo:
    """notAfter and the common names of an X.509 certificate in DER (RFC 5280 section 4.1)."""
    try:
        tbs = _children(der, *_element(der, 0)[1:])[0]
        fields = _children(der, tbs[1], tbs[2])
        if der[fields[0][0]] == 0xA0:  # [0] version, absent in v1 certificates
            fields = fields[1:]
        _serial, _algorithm, issuer, validity, subject = fields[:5]
        not_after = _time(der, _children(der, validity[1], validity[2])[1])
        return CertInfo(not_after, _common_name(der, subject), _common_name(der, issuer))
    except (IndexError, ValueError) as exc:
        raise ValueError(f"malformed DER certificate ({exc})") from None


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag position, content start, content end) of the DER element at ``pos``."""
    length, start = der[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("bad length")
        length, start = int.from_bytes(der[start : start + count], "big"), start + count
    if start + length > len(der):
        raise ValueError("truncated")
    return pos, start, start + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        out.append(_element(der, start))
        start = out[-1][2]
    return out


def _time(der: bytes, element: tuple[int, int, int]) -> float:
    tag, text = der[element[0]], der[element[1] : element[2]].decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; RFC 5280 4.1.2.5.1: YY >= 50 is 19YY
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != _GENERALIZED_TIME:
        raise ValueError("notAfter is not a time")
    return float(calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ")))


def _common_name(der: bytes, name: tuple[int, int, int]) -> str:
    """The first commonName of a Name (SEQUENCE OF SET OF {OID, value}), else ""."""
    for rdn in _children(der, name[1], name[2]):
        for attr in _children(der, rdn[1], rdn[2]):
            oid, value = _children(der, attr[1], attr[2])[:2]
            if der[oid[1] : oid[2]] == _CN_OID:
                raw = der[value[1] : value[2]]
                is_bmp = der[value[0]] == 0x1E
                return raw.decode("utf-16-be" if is_bmp else "utf-8", "replace")
    return ""


# ---------------------------------------------------------------------------------------------
# Evidence over the window, and the facts the verdict rule reads


@dataclass(frozen=True, slots=True)
class HttpFacts:
    """One device's HTTP checks over the policy window, with the thresholds to judge them."""

    url: str
    checks: int  # in the window
    failures: int
    last: HttpFindings | None  # the latest check (None: its result had no findings)
    latency_p95: float | None  # seconds to response headers, answered checks (nearest rank)
    cert_expires_in: float | None  # seconds from now to the latest certificate's notAfter
    max_latency: float  # seconds
    cert_min_days: int

    @property
    def failing(self) -> bool:
        return self.last is not None and not self.last.ok


class HttpEvidence:
    """One device's HTTP results in the window (at most one per interval, so a few dozen)."""

    def __init__(self, window: float) -> None:
        self._window = window
        self.ever_up = False
        self.results: deque[ProbeResult] = deque()

    @property
    def window(self) -> float:
        return self._window

    def add(self, result: ProbeResult) -> None:
        self.results.append(result)
        if len(self.results) > 1 and result.started_at < self.results[-2].started_at:
            self.results = deque(sorted(self.results, key=lambda r: r.started_at))  # history
        self.ever_up = self.ever_up or result.ok
        horizon = self.results[-1].started_at - self._window
        while self.results and self.results[0].started_at < horizon:
            self.results.popleft()

    def close_outage(self, ts: float) -> None:
        """Nothing to close: http never says a device is down."""

    def summary(self, now: float) -> DeviceSummary | None:
        return None  # reachability is ping's (and SNMP's) word, never a web page's

    def facts(self, device: Device, now: float) -> HttpFacts | None:
        settings = getattr(device, "http", None)
        recent = [r for r in self.results if r.started_at >= now - self._window]
        if not isinstance(settings, HttpSettings) or not recent:
            return None
        found = [r.findings for r in recent if isinstance(r.findings, HttpFindings)]
        last = recent[-1].findings
        return HttpFacts(
            url=safe_url(urlsplit(settings.url)),
            checks=len(recent),
            failures=sum(not r.ok for r in recent),
            last=last if isinstance(last, HttpFindings) else None,
            latency_p95=_p95([f.headers_latency for f in found if f.headers_latency is not None]),
            cert_expires_in=_expires_in(found, now),
            max_latency=settings.max_latency,
            cert_min_days=settings.cert_min_days,
        )


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _expires_in(found: list[HttpFindings], now: float) -> float | None:
    for f in reversed(found):
        if f.tls is not None and f.tls.not_after is not None:
            return f.tls.not_after - now
    return None


# ---------------------------------------------------------------------------------------------
# The kind (registered in probes/__init__.py)


@dataclass(frozen=True, slots=True)
class HttpParams:
    """One device's check; the runner's deadline is the check's own plus a margin."""

    settings: HttpSettings

    @property
    def deadline(self) -> float:
        return self.settings.timeout + 1.0


class HttpKind(ProbeKind[HttpEngine | None, HttpParams]):
    """HTTP(S): one GET of the device's ``http.url`` per interval through a shared engine.

    ``reachability`` is None: a web page never decides whether a device is up. A 500 from a
    controller's UI means the box answers; a timeout may be a firewall on 443. So http adds its
    own criteria (``http_check``, ``http_latency``, ``tls_cert_expiring``) and never turns a
    ping-up device down; a device probed by http alone shows no up/down state of its own.
    """

    needs_address = False  # the URL names the target

    name = "http"
    reachability = None
    device_settings = HttpSettings
    findings = HttpFindings

    def job(self, inventory: Inventory, site: Site, device: Device) -> JobSpec:
        settings = getattr(device, "http", None)
        assert isinstance(settings, HttpSettings)  # checks() refused the device otherwise
        return JobSpec(settings.interval, HttpParams(settings))

    def open(self, config: ValidatedConfig) -> HttpEngine:
        return HttpEngine()

    async def close(self, engine: HttpEngine | None) -> None:
        if engine is not None:
            await engine.close()

    async def probe(
        self, engine: HttpEngine | None, target: Target, params: HttpParams
    ) -> ProbeResult:
        started = time.time()
        if engine is None:
            return failed(self.name, started, "no HTTP engine")
        found = await engine.check(params.settings)
        rtts = (found.headers_latency,) if found.headers_latency is not None else ()
        answered = int(found.status is not None)
        return ProbeResult(
            self.name,
            found.ok,
            started,
            time.time() - started,
            1,
            answered,
            rtts,
            found.reason,
            found,
        )

    def new_evidence(self, window: float) -> HttpEvidence:
        return HttpEvidence(window)

    def checks(
        self, inventory: Inventory, device: Device, loc: Loc, profiles: Collection[str]
    ) -> Iterator[tuple[Loc, str]]:
        if "http" in device.kinds and getattr(device, "http", None) is None:
            yield loc + ("http",), "probes include http but the device has no http settings"

    def metrics(self, sites: Iterable[KindSite], now: float) -> Iterable[Metric]:
        return http_metrics(sites, now)


KIND = HttpKind()


# ---------------------------------------------------------------------------------------------
# Metrics (built at scrape time)


def http_metrics(sites: Iterable[KindSite], now: float) -> Iterator[Metric]:
    """Per checked device (labels site, district, type, device, role)."""
    from prometheus_client.core import GaugeMetricFamily

    families = {
        key: GaugeMetricFamily(f"netmon_http_{key}", doc, labels=DEVICE_LABELS)
        for key, doc in (
            ("up", "1 if the device's last HTTP check passed (status, body, TLS)"),
            ("status_code", "HTTP status of the last check, if it got an answer"),
            ("latency_seconds", "Seconds to the response headers in the last check"),
            (
                "cert_expiry_seconds",
                "Seconds until the server certificate expires (negative: expired)",
            ),
            ("failures_in_window", "HTTP checks that failed in the policy window"),
        )
    }
    for ks in sites:
        for name, ev in ks.evidence.items():
            dev = ks.site.device(name)
            if dev is not None and isinstance(ev, HttpEvidence) and ev.results:
                labels = [ks.site.id, ks.site.district, ks.site.type, dev.name, dev.role]
                for key, value in _device_metrics(ev, now).items():
                    if value is not None:
                        families[key].add_metric(labels, value)
    yield from families.values()


def _device_metrics(ev: HttpEvidence, now: float) -> dict[str, float | None]:
    last = ev.results[-1]
    found = last.findings if isinstance(last.findings, HttpFindings) else None
    in_window = [r for r in ev.results if r.started_at >= now - ev.window]
    tls = found.tls if found else None
    expiry = tls.not_after - now if tls and tls.not_after is not None else None
    return {
        "up": float(last.ok),
        "status_code": float(found.status) if found and found.status is not None else None,
        "latency_seconds": found.headers_latency if found else None,
        "cert_expiry_seconds": expiry,
        "failures_in_window": float(sum(not r.ok for r in in_window)),
    }
