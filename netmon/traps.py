"""SNMP traps as hints: a linkDown from a switch gets it polled now, not at its next interval.

A UDP listener in the server process (``NETMON_TRAP_LISTEN``, e.g. ``0.0.0.0:162``; unset: off)
takes SNMPv2c traps. Chosen over net-snmp's ``snmptrapd`` forwarding to netmon: one process
less to deploy and secure, and the work per trap is bounded in netmon (measured,
``bench/traps.py``); pysnmp's receiver decodes through pyasn1 at many times the cost of the
small decoder here, which reads only what a hint needs (BER: version, community, PDU type,
varbinds). In the server, not the poller: a flood costs the server's loop a little, never an
echo's (the poller is another process).

Each datagram, cheapest check first, ends as one counted outcome (``netmon_traps_total``):

    unknown_source  the sender is no device's address           dropped, not decoded
    rate_limited    over its device's budget (:data:`PER_DEVICE`) or the total budget
                    (:data:`TOTAL`): a flood costs a dict look-up and a token count each
    malformed       not BER / not an SNMP message
    unsupported     SNMPv1 / v3, or an inform or other PDU       dropped
    bad_community   not the community of the device's SNMP credentials (compared in constant
                    time); a device without v2c credentials cannot be authenticated
    ignored         a trap netmon does not act on (enterprise traps, ...)
    accepted        coldStart, warmStart, linkDown, linkUp: a :class:`TrapEvent`

An accepted trap is evidence, never a verdict: :class:`TrapHints` notes it with the trap's
time and asks the poller to probe that device now with every kind it has (ping and SNMP,
``PollerLink.poll_now``; at most once per :data:`POKE_GAP` per device, and not before the
monitor is ready: a judgement before the history is loaded would rest on nothing); when that probe's
result arrives the site is judged at once instead of at the next evaluation. The verdict comes
from what the probe then measured (e.g. the uplink's ifOperStatus), as it would an interval
later.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netmon.inventory import Inventory
    from netmon.monitor import Monitor
    from probes import ProbeResult

log = logging.getLogger("netmon.traps")

OUTCOMES = ("accepted", "ignored", "unknown_source", "rate_limited", "malformed",
            "unsupported", "bad_community")  # fmt: skip
PER_DEVICE = (2.0, 10.0)  # traps/s a device may send, burst: a flapping port, not a flood
TOTAL = (200.0, 400.0)  # traps/s decoded over all devices, burst
POKE_GAP = 1.0  # seconds: one immediate poll per device at most this often
EVIDENCE = 1000  # trap events kept in memory (the newest)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
TRAPS: dict[tuple[int, ...], str] = {
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 1): "coldStart",
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 2): "warmStart",
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 3): "linkDown",
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 4): "linkUp",
}
Oid = tuple[int, ...]
Value = int | bytes | Oid | None


class TrapError(ValueError):
    """Not an SNMP message (``unsupported``: one netmon does not take)."""

    def __init__(self, message: str, outcome: str = "malformed") -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Trap:
    community: bytes
    oid: Oid  # snmpTrapOID.0
    varbinds: dict[Oid, Value]

    @property
    def name(self) -> str | None:
        return TRAPS.get(self.oid)

    @property
    def if_index(self) -> int | None:
        for oid, value in self.varbinds.items():
            if oid[: len(IF_INDEX)] == IF_INDEX and isinstance(value, int):
                return value
        return None


def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the BER element at ``i``."""
    tag, n = data[i], data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 4:
            raise TrapError("bad BER length")
        n, i = int.from_bytes(data[i : i + k], "big"), i + k
    if i + n > len(data):
        raise TrapError("truncated")
    return tag, i, i + n


def _expect(data: bytes, i: int, tag: int) -> tuple[int, int]:
    got, start, end = _tlv(data, i)
    if got != tag:
        raise TrapError(f"expected BER tag 0x{tag:02x}, got 0x{got:02x}")
    return start, end


def _oid(raw: bytes) -> Oid:
    if not raw:
        raise TrapError("empty OID")
    out, n = [raw[0] // 40, raw[0] % 40], 0
    for b in raw[1:]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            out.append(n)
            n = 0
    return tuple(out)


def _value(tag: int, raw: bytes) -> Value:
    if tag == 0x02:
        return int.from_bytes(raw, "big", signed=True)
    if tag in (0x41, 0x42, 0x43, 0x46):  # Counter32, Gauge32, TimeTicks, Counter64
        return int.from_bytes(raw, "big")
    if tag == 0x06:
        return _oid(raw)
    return None if tag == 0x05 else bytes(raw)


def decode(data: bytes) -> Trap:
    """The SNMPv2c trap in ``data``; a TrapError if it is not one."""
    try:
        return _decode(data)
    except IndexError:
        raise TrapError("truncated") from None


def _decode(data: bytes) -> Trap:
    start, end = _expect(data, 0, 0x30)
    vs, ve = _expect(data, start, 0x02)
    if (version := int.from_bytes(data[vs:ve], "big")) != 1:
        raise TrapError(f"SNMP version {'1' if version == 0 else version}", "unsupported")
    cs, ce = _expect(data, ve, 0x04)
    tag, ps, pe = _tlv(data, ce)
    if tag != 0xA7:
        raise TrapError(f"PDU 0x{tag:02x} is not an SNMPv2-Trap", "unsupported")
    i = ps
    for _ in range(3):  # request-id, error-status, error-index
        i = _expect(data, i, 0x02)[1]
    i, list_end = _expect(data, i, 0x30)
    varbinds: dict[Oid, Value] = {}
    while i < list_end:
        vb, i = _expect(data, i, 0x30)
        os_, oe = _expect(data, vb, 0x06)
        tag, s, e = _tlv(data, oe)
        varbinds[_oid(data[os_:oe])] = _value(tag, data[s:e])
    oid = varbinds.get(SNMP_TRAP_OID)
    if not isinstance(oid, tuple):
        raise TrapError("no snmpTrapOID.0")
    return Trap(bytes(data[cs:ce]), oid, varbinds)


@dataclass(frozen=True)
class TrapEvent:
    """An accepted trap: evidence with its time (``at``, Unix seconds, when it was received)."""

    at: float
    site: str
    device: str
    trap: str
    if_index: int | None
    source: str


@dataclass
class Bucket:
    """A token bucket: ``rate`` per second, at most ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = math.nan
    at: float = 0.0

    def take(self, now: float) -> bool:
        if math.isnan(self.tokens):
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True)
class Sender:
    site: str
    device: str
    community: bytes | None  # of the device's v2c credentials; None: cannot authenticate


def directory(inventory: Inventory) -> dict[str, Sender]:
    """Each device's IP address (normalised) -> who it is; host names are not matched."""
    out: dict[str, Sender] = {}
    creds = inventory.snmp.credentials
    for site in inventory.sites:
        for dev in site.devices:
            try:
                address = ipaddress.ip_address(dev.address or "").compressed
            except ValueError:
                continue
            cred = creds.get(dev.snmp.credentials) if dev.snmp is not None else None
            community = None
            if cred is not None and cred.version == "2c" and cred.community is not None:
                community = cred.community.get_secret_value().encode()
            out.setdefault(address, Sender(site.id, dev.name, community))
    return out


@dataclass
class TrapReceiver(asyncio.DatagramProtocol):
    """The UDP listener: each datagram to one outcome (counted), accepted ones to ``on_trap``."""

    senders: dict[str, Sender]
    on_trap: Callable[[TrapEvent], None]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _total: Bucket = field(default_factory=lambda: Bucket(*TOTAL))

    def update(self, inventory: Inventory) -> None:
        self.senders = directory(inventory)
        self._buckets = {a: b for a, b in self._buckets.items() if a in self.senders}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # hot loop: once per datagram, a flood's 10,000/s mostly stop at the first two checks
        source = str(addr[0])
        sender = self.senders.get(source) or self.senders.get(_normal(source))
        if sender is None:
            self.counts["unknown_source"] += 1
            return
        now = self.clock()
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = Bucket(*PER_DEVICE)
        if not (bucket.take(now) and self._total.take(now)):
            self.counts["rate_limited"] += 1
            return
        outcome, event = self._judge(data, source, sender)
        self.counts[outcome] += 1
        if event is not None:
            self.on_trap(event)

    def _judge(self, data: bytes, source: str, sender: Sender) -> tuple[str, TrapEvent | None]:
        try:
            trap = decode(data)
        except TrapError as exc:
            return exc.outcome, None
        if sender.community is None or not hmac.compare_digest(trap.community, sender.community):
            return "bad_community", None
        if trap.name is None:
            return "ignored", None
        event = TrapEvent(self.wall(), sender.site, sender.device, trap.name, trap.if_index, source)
        return "accepted", event


def _normal(source: str) -> str:
    try:
        return ipaddress.ip_address(source.split("%")[0]).compressed
    except ValueError:
        return source


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); a ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port (e.g. 0.0.0.0:162), got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class TrapHints:
    """Accepted traps as hints: evidence kept, the device polled now, its site judged as soon
    as that poll's result is in. Registered as one of the monitor's result listeners."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.events: deque[TrapEvent] = deque(maxlen=EVIDENCE)
        self.last: dict[tuple[str, str, str], float] = {}  # (site, device, trap) -> its time
        self.receiver: TrapReceiver | None = None
        self._poked: dict[tuple[str, str], float] = {}  # device -> when it was last polled now
        # device -> (trap time, the kinds whose poll since then is not back yet)
        self._waiting: dict[tuple[str, str], tuple[float, set[str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        monitor.listeners.append(self.result)
        monitor.traps = self

    def hint(self, event: TrapEvent) -> None:
        self.events.append(event)
        self.last[(event.site, event.device, event.trap)] = event.at
        key = (event.site, event.device)
        log.info("trap %s from %s/%s (ifIndex %s)", event.trap, *key, event.if_index)
        if not self.monitor.ready:  # still loading history: judging now would judge on nothing
            return
        if event.at - self._poked.get(key, -math.inf) < POKE_GAP:
            return
        site = self.monitor.inventory.site(event.site)
        dev = site.device(event.device) if site is not None else None
        if dev is None:
            return  # left the inventory since the receiver's directory was built
        self._poked[key] = event.at
        self._waiting[key] = (event.at, set(dev.kinds))
        task = asyncio.get_running_loop().create_task(self.monitor.poller.poll_now(*key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def result(self, site_id: str, device: str, result: ProbeResult) -> None:
        """A result taken: if it answers a trap's poll, judge its site now, not at the next
        evaluation (each kind's answer, so the SNMP one counts when the ping came first)."""
        waiting = self._waiting.get((site_id, device))
        if (
            waiting is None
            or not self.monitor.ready
            or result.started_at < waiting[0]
            or result.kind not in waiting[1]
        ):
            return
        waiting[1].discard(result.kind)
        if not waiting[1]:
            del self._waiting[(site_id, device)]
        asyncio.get_running_loop().call_soon(self.monitor.evaluate)

    @property
    def outstanding(self) -> int:
        """Devices polled for a trap whose every kind has not answered yet."""
        return len(self._waiting)

    def of_site(self, site_id: str) -> list[TrapEvent]:
        return [e for e in self.events if e.site == site_id]

    async def listen(self, host: str, port: int) -> asyncio.DatagramTransport:
        """Start the receiver on ``host:port`` for the monitor's inventory."""
        receiver = self.receiver = TrapReceiver(directory(self.monitor.inventory), self.hint)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: receiver, local_addr=(host, port)
        )
        return transport
