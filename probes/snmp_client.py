"""The SNMP client seam, and its gufo-snmp client for SNMPv1 and SNMPv3.

:func:`open_client` picks the client by version: SNMPv2c goes to
:class:`probes.snmp_bulk.BulkClient` (multi-column GETBULK walks on netmon's own codec and one
shared UDP socket: why, and the figures, in its docstring and bench/README.md); SNMPv1 (no
GETBULK) and SNMPv3 (USM) to :class:`GufoClient` below, which walks one column at a time.

Why gufo-snmp
    Its encoder/decoder is Rust; measured here against snmpd/snmpsim on loopback it did
    ~23,000 GET/s at 0.04 ms CPU each (pysnmp 7.1: ~1,500 GET/s, 0.67 ms) and walked a
    1,078-varbind ifTable in ~5 ms CPU (pysnmp: 185-450 ms; the net-snmp CLI ~7 ms per
    process). It does v1/v2c and v3 USM (MD5, SHA-1/224/256/384/512; DES, AES-128/192/256),
    discards responses whose request-id does not match (a late answer to a retried request is
    dropped, not mistaken for the new one) and stops GETBULK walks at the end of the subtree.

The seam
    :class:`SnmpClient` is what the poller uses: ``read`` (a poll's scalars and tables, see
    :class:`TableRead`), plus ``get`` and ``walk``; :func:`open_client` makes the real one.
    :class:`PerColumn` gives ``read`` as a GET and column walks (GufoClient and test fakes).
    A client is used for one poll of one device and then dropped (gufo opens one connected UDP
    socket per session; it closes when collected).

Concurrent walks
    The poller walks up to ``settings.max_walks`` columns of a device at once. A gufo session
    cannot carry two requests at a time (its socket remembers only the last request id and
    asyncio allows one reader per socket: a second request in flight makes the first time out),
    so :class:`GufoClient` keeps a small pool of sessions, one per walk in flight: created when
    a walk finds none idle, reused when a walk ends. Requests of all sessions count in one
    :class:`RequestStats`.

SNMPv3 engine id
    A new v3 session discovers the agent's engine id (one exchange) and then learns its engine
    boots/time (another): ``open(engine_id=...)`` skips the discovery when the caller knows the
    id from an earlier poll, and :attr:`GufoClient.engine_id` is the id the agent confirmed.
    gufo-snmp 0.13 takes the engine id but has no way to pass in boots/time, and refuses to
    send authenticated requests without them, so every v3 session still costs one refresh
    exchange (the extra walk sessions too). A stale id (device replaced) goes unanswered --
    gufo drops messages from another engine -- so the remembered id gets the first attempt
    only; after a timeout the remaining attempts (at least one) rediscover it. noAuthNoPriv
    sends no refresh with a known id, so nothing would catch a stale one: it always discovers.

Exceptions (messages are safe to show: they never carry a community or key)::

    SnmpError                 base class
    ├── SnmpTimeout           no answer to a request after all retries
    ├── SnmpAuthError         v3 authentication failed (unknown user, wrong auth protocol/key)
    └── SnmpRequestError      the agent answered with an error, or the answer did not decode
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

try:
    import gufo.snmp as gufo
    from gufo.snmp.aio.client import SnmpSession
except ImportError:  # pragma: no cover - reported by open_client()
    gufo = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from probes.snmp import SnmpSettings

Value = None | str | bytes | int | float
T = TypeVar("T")
log = logging.getLogger("netmon.probes.snmp")
_GET_CHUNK = 16  # varbinds per GET request


class SnmpError(Exception):
    """Base of every SNMP failure netmon reports (see the module docstring)."""


class SnmpTimeout(SnmpError):
    pass


class SnmpAuthError(SnmpError):
    pass


class SnmpRequestError(SnmpError):
    pass


@dataclass(slots=True)
class RequestStats:
    """Request/response exchanges of one client (a retry is another request)."""

    sent: int = 0
    received: int = 0


@dataclass(slots=True)
class TableRead:
    """One table's columns for :meth:`SnmpClient.read`, filled as answers arrive (what was
    read stays when the poll is cut short)."""

    columns: Sequence[str]  # column OIDs (no index)
    repetitions: int = 0  # GETBULK max-repetitions to start with (0: the settings')
    values: dict[str, dict[str, Value]] = field(default_factory=dict)  # column: {index: value}
    done: set[str] = field(default_factory=set)  # columns read to the end of their subtree
    # in: what the client made of the table at the device's last poll (opaque; v2c: a
    # probes.snmp_bulk.Layout), out: this poll's, for the next one
    layout: object | None = None


class SnmpClient(Protocol):
    """One device's SNMP sessions for one poll."""

    stats: RequestStats
    engine_id: bytes | None  # v3: the agent's engine id once it answered; else None

    async def open(self, engine_id: bytes | None = None) -> None:
        """Prepare the session (v3: learn engine boots/time; discover the engine id unless
        ``engine_id`` -- remembered from an earlier poll -- is still the agent's)."""

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        """Values of ``oids`` the agent has (absent ones are left out)."""
        ...

    def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        """(oid, value) of every object under ``oid``, in order. Several walks may be in
        flight at once (up to ``settings.max_walks``)."""
        ...

    async def read(
        self,
        scalars: Sequence[str],
        tables: Sequence[TableRead],
        into: dict[str, Value],
        max_walks: int,
    ) -> None:
        """A poll's reads: the values of ``scalars`` into ``into`` and every column of
        ``tables`` into its :class:`TableRead`, tables in the order given, at most
        ``max_walks`` walks (or multi-column table reads) in flight. Raises the first failure;
        what was read until then stays in ``into`` and ``tables``."""


class PerColumn:
    """:meth:`SnmpClient.read` as a GET of the scalars, then one :meth:`walk` per column with
    up to ``max_walks`` in flight (gufo-snmp's v1 and v3 sessions, and test fakes)."""

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        raise NotImplementedError

    def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        raise NotImplementedError

    async def read(
        self,
        scalars: Sequence[str],
        tables: Sequence[TableRead],
        into: dict[str, Value],
        max_walks: int,
    ) -> None:
        if scalars:
            into.update(await self.get(scalars))
        pending = iter([(t, oid) for t in tables for oid in t.columns])  # shared by the lanes

        async def lane() -> None:
            for table, oid in pending:
                values = table.values.setdefault(oid, {})
                prefix = oid + "."
                async for name, value in self.walk(oid):
                    if name.startswith(prefix):
                        values[name[len(prefix) :]] = value
                table.done.add(oid)

        lanes = min(max_walks, sum(len(t.columns) for t in tables))
        await in_lanes(lane, lanes)


async def in_lanes(lane: Callable[[], Coroutine[Any, Any, None]], lanes: int) -> None:
    """Run ``lanes`` copies of ``lane`` at once; the first :class:`SnmpError` ends them all
    and is raised as such (a sequential read would have raised it too)."""
    if lanes <= 1:
        await lane()
        return
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(lanes):
                group.create_task(lane())
    except ExceptionGroup as failed:
        if all(isinstance(exc, SnmpError) for exc in failed.exceptions):
            raise failed.exceptions[0] from None
        raise


ClientFactory = Callable[[str, "SnmpSettings"], Awaitable[SnmpClient]]


async def open_client(address: str, settings: SnmpSettings) -> SnmpClient:
    """The real client: resolve ``address`` and build a gufo-snmp session for ``settings``."""
    if settings.version == "2c":
        from probes.snmp_bulk import BulkClient  # (it imports this module)

        return BulkClient(await _resolve(address), settings)
    if gufo is None:
        raise SnmpError("gufo-snmp is not installed (pip install gufo-snmp)")
    return GufoClient(await _resolve(address), settings)


class GufoClient(PerColumn):
    """:class:`SnmpClient` over gufo-snmp sessions (one per walk in flight): per-request
    timeout and retries."""

    def __init__(self, ip: str, settings: SnmpSettings) -> None:
        self.stats = RequestStats()
        self.engine_id: bytes | None = None
        self._ip = ip
        self._settings = settings
        self._attempts = settings.retries + 1
        self._idle: list[SnmpSession] = []  # sessions with no request in flight

    def __repr__(self) -> str:
        return f"<GufoClient v{self._settings.version} port {self._settings.port}>"

    async def open(self, engine_id: bytes | None = None) -> None:
        self._idle.append(await self._new_session(engine_id))

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        session = self._idle.pop() if self._idle else await self._new_session()
        values: dict[str, Value] = {}
        for start in range(0, len(oids), _GET_CHUNK):
            chunk = list(oids[start : start + _GET_CHUNK])
            values.update(await self._exchange(partial(session.get_many, chunk)))
        self._idle.append(session)
        return values

    async def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        # A session whose walk failed or was abandoned is dropped, not reused.
        session = self._idle.pop() if self._idle else await self._new_session()
        iterator = session.getbulk(oid, self._settings.max_repetitions)
        while True:
            # gufo buffers a GETBULK response; a request goes out only when the buffer is empty.
            sends = not getattr(iterator, "_buffer", None)
            try:
                item = await (self._exchange(iterator.__anext__) if sends else anext(iterator))
            except StopAsyncIteration:
                self._idle.append(session)
                return
            yield item

    async def _new_session(self, hint: bytes | None = None) -> SnmpSession:
        """A session ready for requests (v3: engine id known, boots/time learned)."""
        settings = self._settings
        if settings.version != "3":
            return _session(self._ip, settings)
        if self.engine_id:  # confirmed earlier in this poll: one refresh, full retries
            session = _session(self._ip, settings, self.engine_id)
            if settings.auth_key:  # noAuthNoPriv has no time window: gufo sends nothing
                await self._exchange(session.refresh)
            return session
        attempts = self._attempts
        if hint and settings.auth_key:
            session = _session(self._ip, settings, hint)
            try:
                await self._exchange(session.refresh, attempts=1)
            except SnmpTimeout:
                log.debug("remembered SNMPv3 engine id went unanswered; rediscovering")
                attempts = max(attempts - 1, 1)
            else:
                self.engine_id = hint
                return session
        session = _session(self._ip, settings)
        await self._discover(session, attempts)
        self.engine_id = session.get_engine_id()
        return session

    async def _discover(self, session: SnmpSession, attempts: int) -> None:
        """gufo's refresh on a session without an engine id: discovery, then boots/time."""
        try:
            await self._exchange(session.refresh, attempts=attempts)
        finally:
            if session.get_engine_id():  # the discovery exchange was answered: count it too
                self.stats.sent += 1
                self.stats.received += 1

    async def _exchange(
        self, request: Callable[[], Awaitable[T]], attempts: int | None = None
    ) -> T:
        """Send ``request`` up to ``attempts`` (default ``retries + 1``) times; translate
        gufo's errors."""
        for _attempt in range(attempts or self._attempts):
            self.stats.sent += 1
            try:
                result = await request()
            except TimeoutError:
                continue
            except StopAsyncIteration:
                self.stats.received += 1
                raise
            except gufo.SnmpAuthError as exc:
                self.stats.received += 1  # the agent answered: with a USM report
                raise SnmpAuthError(
                    "SNMPv3 authentication failed (unknown user, or wrong auth protocol or key)"
                ) from exc
            except gufo.SnmpError as exc:
                self.stats.received += 1
                raise SnmpRequestError(f"SNMP request failed: {type(exc).__name__}") from exc
            except (OSError, ValueError, RuntimeError) as exc:
                raise SnmpRequestError(f"SNMP request failed: {type(exc).__name__}") from exc
            self.stats.received += 1
            return result
        raise SnmpTimeout(self._timeout_message())

    def _timeout_message(self) -> str:
        return timeout_message(self._settings)


def timeout_message(settings: SnmpSettings) -> str:
    """Why a request went unanswered, as the poll's reason says it."""
    tries = settings.retries + 1
    attempts = f"{tries} attempt{'s' if tries != 1 else ''}"
    hint = (
        " (device down or unreachable, or wrong community)"
        if settings.version != "3"
        else " (device down or unreachable, or wrong privacy key)"
    )
    return f"no SNMP response after {attempts} of {settings.timeout:g}s{hint}"


def _session(ip: str, settings: SnmpSettings, engine_id: bytes | None = None) -> SnmpSession:
    """A gufo-snmp session for the settings' version and security level (v3: ``engine_id``
    known, else discovered by the session's first refresh)."""
    session = partial(
        SnmpSession, ip, settings.port,
        timeout=settings.timeout, max_repetitions=settings.max_repetitions,
    )  # fmt: skip
    if settings.version != "3":
        version = gufo.SnmpVersion.v1 if settings.version == "1" else gufo.SnmpVersion.v2c
        return session(community=settings.community, version=version)
    auth = _AUTH[settings.auth_protocol](settings.auth_key.encode()) if settings.auth_key else None
    priv = _PRIV[settings.priv_protocol](settings.priv_key.encode()) if settings.priv_key else None
    user = gufo.User(settings.user, auth_key=auth, priv_key=priv)
    return session(user=user, engine_id=engine_id, version=gufo.SnmpVersion.v3)


if gufo is not None:
    _AUTH: dict[str, Callable[[bytes], gufo.BaseAuthKey]] = {
        "SHA": gufo.Sha1Key,
        "SHA-224": gufo.Sha224Key,
        "SHA-256": gufo.Sha256Key,
        "SHA-384": gufo.Sha384Key,
        "SHA-512": gufo.Sha512Key,
    }
    _PRIV: dict[str, Callable[[bytes], gufo.BasePrivKey]] = {
        "AES": gufo.Aes128Key,
        "AES-192": gufo.Aes192Key,
        "AES-256": gufo.Aes256Key,
    }


async def _resolve(address: str) -> str:
    """The IP literal to poll for ``address`` (a literal, or a name resolved once per poll)."""
    literal = _literal(address)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address, None, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SnmpError(f"cannot resolve {address!r}: {getattr(exc, 'strerror', exc)}") from exc
    if not infos:
        raise SnmpError(f"cannot resolve {address!r}: no address")
    return str(infos[0][4][0])


@functools.lru_cache(maxsize=1 << 14)  # the same devices every poll: parse each address once
def _literal(address: str) -> str | None:
    """``address`` as a normalised IP literal, or None if it is a name."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
