"""Host names for the ICMP engine: literals parsed once, names resolved and cached.

A target is an IPv4/IPv6 literal (``fe80::1%eth0`` too) or a host name. :func:`parse_literal`
turns a literal into a :class:`Destination` (what ``sendto`` takes and what a reply's source must
be) without any lookup. Names are resolved with ``AF_UNSPEC`` and cached by :class:`NameCache`:
the first burst waits for the lookup, later bursts use the cached answer, and once it is older
than ``resolve_ttl`` one background refresh runs (failures keep the last good answer). The engine
(:mod:`probes.icmp_engine`) pings the first resolved address whose family has a working socket,
in the resolver's (RFC 6724 / gai.conf) order. Never a lookup per echo.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("netmon.probes.icmp")

DEFAULT_RESOLVE_TTL = 300.0  # seconds a resolved name is used before a background refresh
DEFAULT_NEGATIVE_TTL = 30.0  # seconds a failed lookup is remembered (no lookup storm)
_NAME_CACHE_MAX = 200_000  # entries; beyond that the cache starts over


@dataclass(frozen=True, slots=True)
class Destination:
    """A resolved address: what to put in ``sendto`` and what a reply's source must be."""

    family: int
    ip: str  # canonical text form (compressed IPv6, no scope); what replies come from
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


Lookup = Callable[[str], Awaitable[list[tuple[int, str]]]]


async def system_lookup(name: str) -> list[tuple[int, str]]:
    """``getaddrinfo(name, AF_UNSPEC)`` as (family, address) pairs in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, None, family=socket.AF_UNSPEC, type=socket.SOCK_RAW)
    return [(info[0], str(info[4][0])) for info in infos]


class ResolveError(Exception):
    """A name has no usable address; the message says why (it becomes a burst's reason)."""


def parse_literal(address: str) -> Destination | None:
    """The :class:`Destination` of an IPv4/IPv6 literal (``fe80::1%eth0`` too), else None."""
    try:
        ip = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address))
        return Destination(socket.AF_INET, ip, (ip, 0))
    except (OSError, ValueError):
        pass
    text, _, scope = address.partition("%")
    try:
        ip = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None
    scope_id = 0
    if scope:
        try:
            scope_id = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        except OSError:
            return None
    return Destination(socket.AF_INET6, ip, (ip, 0, 0, scope_id))


class _Entry:
    __slots__ = ("dests", "error", "fresh_until", "refreshing")

    def __init__(self) -> None:
        self.dests: tuple[Destination, ...] = ()
        self.error = ""
        self.fresh_until = 0.0
        self.refreshing: asyncio.Future[None] | None = None


class NameCache:
    """Host name -> addresses, cached for ``ttl`` s and refreshed in the background.

    * literal: parsed once, cached for good;
    * unknown name: the caller waits for the lookup (concurrent callers share it);
    * fresh entry: returned at once, no lookup;
    * stale entry with addresses: returned at once, and one background refresh starts (a failed
      refresh keeps the old addresses and is retried after ``negative_ttl``);
    * failed lookup: the error is returned for ``negative_ttl`` s, then looked up again.

    ``lookup`` and ``clock`` are seams for tests.
    """

    def __init__(
        self,
        lookup: Lookup = system_lookup,
        ttl: float = DEFAULT_RESOLVE_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self.lookups = 0  # calls to ``lookup`` (for tests and metrics)
        self._literals: dict[str, Destination | None] = {}
        self._names: dict[str, _Entry] = {}
        self._background: set[asyncio.Task[None]] = set()

    def literal(self, address: str) -> Destination | None:
        try:
            return self._literals[address]
        except KeyError:
            pass
        if len(self._literals) >= _NAME_CACHE_MAX:
            self._literals.clear()
        dest = self._literals[address] = parse_literal(address)
        return dest

    async def resolve(self, name: str) -> tuple[Destination, ...]:
        """Addresses for ``name`` (a literal or a host name); raises :class:`ResolveError`."""
        dest = self.literal(name)
        if dest is not None:
            return (dest,)
        entry = self._names.get(name)
        if entry is None:
            if len(self._names) >= _NAME_CACHE_MAX:
                self._names.clear()
            entry = self._names[name] = _Entry()
        now = self.clock()
        if entry.fresh_until <= now and entry.refreshing is None:
            entry.refreshing = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._refresh(name, entry))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if not entry.dests and entry.refreshing is not None:
            await asyncio.shield(entry.refreshing)  # first lookup: wait for it
        if entry.dests:
            return entry.dests
        raise ResolveError(entry.error or f"cannot resolve {name!r}")

    async def _refresh(self, name: str, entry: _Entry) -> None:
        self.lookups += 1
        try:
            try:
                pairs = await self.lookup(name)
            except (OSError, UnicodeError, ValueError) as exc:
                pairs, why = [], getattr(exc, "strerror", None) or str(exc)
            else:
                why = "no address"
            dests = tuple(
                d for fam, ip in pairs if (d := parse_literal(ip)) is not None and d.family == fam
            )
            dests = tuple(dict.fromkeys(dests))  # drop duplicates, keep order
            if dests:
                entry.dests, entry.error = dests, ""
                entry.fresh_until = self.clock() + self.ttl
            else:
                entry.fresh_until = self.clock() + self.negative_ttl
                if entry.dests:
                    log.warning("cannot refresh %r (%s); keeping %s", name, why, entry.dests[0].ip)
                else:
                    entry.error = f"cannot resolve {name!r}: {why}"
        finally:
            done, entry.refreshing = entry.refreshing, None
            if done is not None and not done.done():
                done.set_result(None)

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()
