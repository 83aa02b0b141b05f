"""User-space ICMP echo responder for the lab namespace (standard library only).

Run inside the lab namespace, where the kernel's own echo replies are switched off::

    ip netns exec NS python -m netmon.lab.responder --config devices.json --control ctl.sock

One raw ICMP socket (kernel ``ICMP_FILTER``: echo requests only) receives every echo sent to a
lab address. Per destination device the responder decides, from the device's faults, whether to
answer and after how long; replies due later wait in a timer heap, so thousands of echoes per
second cost one ``select`` loop, not a thread or task per packet. Replies are built with
``IP_HDRINCL`` so their source is the device's address.

Faults per device (seconds; see :mod:`netmon.lab.model`)
    loss, delay, jitter, down, periods [[start, end|null], ...], flap [period, down_for, offset],
    propagate. A device is silent while it or any device on its parent chain is down.

Loss is *stratified* pseudo-random loss, seeded per device: echo number n falls in stratum
``floor(n * p)``, and exactly one echo of each stratum, at a seeded random position, is dropped
(for p > 0.5 exactly one is delivered). So 1,000 echoes at 3 % lose exactly 30, at unpredictable
positions, and any short run of echoes sees close to the configured rate.

Control socket (Unix stream, one JSON request line, one JSON reply line): ``ping``,
``set {device, faults}``, ``outage {device, seconds}``, ``epoch``, ``stats {device?}``,
``get {device}``. Devices are named ``site/device`` or by address.

The process exits on SIGTERM/SIGINT/SIGHUP, when its parent dies, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import random
import select
import signal
import socket
import struct
import sys
import time
import zlib
from typing import Any

ECHO_REQUEST = 8
SOL_RAW = 255
ICMP_FILTER = 1
MAX_DRAIN = 1024  # packets read per readiness event before timers get a turn
MAX_PENDING = 200_000  # delayed replies held at most; beyond that echoes are dropped
MAX_CONTROL_BYTES = 1 << 20
SELECT_MAX = 0.2  # seconds; also how quickly a stop request or a dead parent is noticed
_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
FAULT_KEYS = ("loss", "delay", "jitter", "down", "periods", "flap", "propagate")


class LossPattern:
    """Seeded stratified loss: exactly one event per stratum of ``1/rate`` echoes."""

    def __init__(self, loss: float, seed: int) -> None:
        self.loss = loss
        self.invert = loss > 0.5  # then the rare event is a delivery, not a drop
        self.rate = 1.0 - loss if self.invert else loss
        self.rng = random.Random(seed)
        self.n = 0
        self.k = 0
        self.event_at = -1
        self.stratum_end = 0
        if self.rate > 0:
            self._plan()

    def _plan(self) -> None:
        lo = math.floor(self.k / self.rate)
        hi = max(math.floor((self.k + 1) / self.rate), lo + 1)
        self.event_at = self.rng.randrange(lo, hi)
        self.stratum_end = hi

    def drop(self) -> bool:
        if self.rate <= 0:
            return self.invert
        n = self.n
        self.n += 1
        hit = n == self.event_at
        if self.n >= self.stratum_end:
            self.k += 1
            self._plan()
        return hit != self.invert


def check_faults(faults: dict[str, Any]) -> dict[str, Any]:
    """Validate a (partial) fault dict as sent over the control socket; raise ValueError."""
    out: dict[str, Any] = {}
    for key, value in faults.items():
        if key not in FAULT_KEYS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(FAULT_KEYS)})")
        out[key] = _check_one(key, value)
    return out


def _check_one(key: str, value: Any) -> Any:
    if key in ("down", "propagate"):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if key in ("loss", "delay", "jitter"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key} must be a number >= 0")
        if key == "loss" and value > 1:
            raise ValueError("loss must be between 0 and 1")
        return float(value)
    if key == "periods":
        return [_period(p) for p in value]
    return None if value is None else _flap(value)


def _period(p: Any) -> list[float | None]:
    start, end = float(p[0]), None if p[1] is None else float(p[1])
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"bad period {p!r}")
    return [start, end]


def _flap(f: Any) -> list[float]:
    period, down_for, offset = (float(x) for x in f)
    if not 0 < down_for < period or offset < 0:
        raise ValueError(f"bad flap {f!r}: need 0 < down_for < period, offset >= 0")
    return [period, down_for, offset]


class Device:
    """One lab device: its faults, its parent chain and what happened to its echoes."""

    def __init__(self, spec: dict[str, Any], seed: int) -> None:
        self.name: str = spec["name"]
        self.address: str = spec["address"]
        self.parent: str | None = spec.get("parent")
        self.seed = zlib.crc32(f"{seed}:{self.name}".encode())
        self.faults: dict[str, Any] = {
            "loss": 0.0, "delay": 0.0, "jitter": 0.0, "down": False, "periods": [],
            "flap": None, "propagate": False,
        }  # fmt: skip
        self.faults.update(check_faults({k: spec[k] for k in FAULT_KEYS if k in spec}))
        self.chain: list[Device] = [self]  # self, then ancestors nearest first
        self.down_until = 0.0  # monotonic deadline of an on-demand outage
        self.jitter_rng = random.Random(self.seed ^ 0x5A5A5A5A)
        self.loss = LossPattern(0.0, self.seed)
        self.delay = 0.0
        self.jitter = 0.0
        self.counts = {"requests": 0, "replies": 0, "lost_down": 0, "lost_loss": 0, "errors": 0}

    def own_down(self, t: float, mono: float) -> bool:
        f = self.faults
        if f["down"] or mono < self.down_until:
            return True
        for start, end in f["periods"]:
            if t >= start and (end is None or t < end):
                return True
        flap = f["flap"]
        if flap is not None and t >= flap[2]:
            period, down_for, offset = (float(x) for x in flap)
            return bool((t - offset) % period >= period - down_for)
        return False

    def silent(self, t: float, mono: float) -> bool:
        return any(d.own_down(t, mono) for d in self.chain)

    def refresh(self) -> None:
        """Recompute effective loss/delay/jitter from the chain (after any fault change)."""
        keep = 1.0 - self.faults["loss"]
        delay, jitter = self.faults["delay"], self.faults["jitter"]
        for up in self.chain[1:]:
            if up.faults["propagate"]:
                keep *= 1.0 - up.faults["loss"]
                delay += up.faults["delay"]
                jitter += up.faults["jitter"]
        loss = 1.0 - keep
        if abs(loss - self.loss.loss) > 1e-12:
            self.loss = LossPattern(loss, self.seed + self.loss.k + 1)
        self.delay, self.jitter = delay, jitter

    def reply_delay(self) -> float:
        if self.jitter <= 0:
            return self.delay
        return max(0.0, self.delay + self.jitter_rng.uniform(-self.jitter, self.jitter))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "parent": self.parent,
                "faults": self.faults, "effective_loss": self.loss.loss,
                "effective_delay": self.delay, "effective_jitter": self.jitter,
                "counts": self.counts}  # fmt: skip


def build_devices(config: dict[str, Any]) -> dict[str, Device]:
    seed = int(config.get("seed", 1))
    devices = {d["name"]: Device(d, seed) for d in config["devices"]}
    for dev in devices.values():
        cur, guard = dev, 0
        while cur.parent is not None and cur.parent in devices and guard < 64:
            cur = devices[cur.parent]
            if cur in dev.chain:
                break
            dev.chain.append(cur)
            guard += 1
        dev.refresh()
    return devices


def make_reply(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(reply packet with IP header, requester address, device address) or None if not an echo."""
    ihl = (data[0] & 0x0F) * 4
    if len(data) < ihl + 8 or data[ihl] != ECHO_REQUEST:
        return None
    src, dst = data[12:16], data[16:20]
    icmp = data[ihl:]
    code = icmp[1]
    old = ((ECHO_REQUEST << 8) | code, (icmp[2] << 8) | icmp[3])
    checksum = _adjust_checksum(old[1], old[0], code)
    reply = bytes((0, code)) + checksum.to_bytes(2, "big") + icmp[4:]
    header = _IP_HEADER.pack(0x45, 0, 20 + len(reply), 0, 0, 64, socket.IPPROTO_ICMP, 0, dst, src)
    return header + reply, src, dst


def _adjust_checksum(checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 incremental update: HC' = ~(~HC + ~m + m')."""
    total = (~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Responder:
    def __init__(self, config: dict[str, Any], control_path: str, parent_pid: int | None) -> None:
        self.devices = build_devices(config)
        self.by_address = {socket.inet_aton(d.address): d for d in self.devices.values()}
        self.control_path = control_path
        self.parent_pid = parent_pid
        self.epoch = time.monotonic()
        self.heap: list[tuple[float, int, bytes, str]] = []
        self.serial = 0
        self.stop = False
        self.totals = {"received": 0, "not_lab": 0, "overflow": 0, "send_errors": 0}
        self.sock = self._raw_socket()
        self.ctl = self._control_socket(control_path)

    @staticmethod
    def _raw_socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REQUEST) & 0xFFFFFFFF))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _control_socket(path: str) -> socket.socket:
        if os.path.exists(path):
            os.unlink(path)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            ctl.bind(path)
        finally:
            os.umask(old)
        ctl.listen(16)
        ctl.setblocking(False)
        return ctl

    # -- the loop --------------------------------------------------------------------------
    def run(self, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        log(
            f"responder pid {os.getpid()}: {len(self.devices)} devices, control {self.control_path}"
        )
        while not self.stop and time.monotonic() < deadline:
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log("parent process gone; exiting")
                break
            timeout = SELECT_MAX
            if self.heap:
                timeout = min(timeout, max(0.0, self.heap[0][0] - time.monotonic()))
            readable, _, _ = select.select([self.sock, self.ctl], [], [], timeout)
            if self.sock in readable:
                self._drain()
            if self.ctl in readable:
                self._serve_control()
            self._fire_due()
        self.close()

    def close(self) -> None:
        self.sock.close()
        self.ctl.close()
        if os.path.exists(self.control_path):
            os.unlink(self.control_path)

    def _drain(self) -> None:
        mono = time.monotonic()
        t = mono - self.epoch
        for _ in range(MAX_DRAIN):
            try:
                data, _ = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            self.totals["received"] += 1
            self._on_packet(data, t, mono)

    def _on_packet(self, data: bytes, t: float, mono: float) -> None:
        built = make_reply(data)
        if built is None:
            return
        packet, requester, dst = built
        dev = self.by_address.get(dst)
        if dev is None:
            self.totals["not_lab"] += 1
            return
        dev.counts["requests"] += 1
        if dev.silent(t, mono):
            dev.counts["lost_down"] += 1
            return
        if dev.loss.drop():
            dev.counts["lost_loss"] += 1
            return
        delay = dev.reply_delay()
        to = socket.inet_ntoa(requester)
        if delay <= 0:
            self._send(packet, to, dev)
        elif len(self.heap) >= MAX_PENDING:
            self.totals["overflow"] += 1
        else:
            self.serial += 1
            heapq.heappush(self.heap, (mono + delay, self.serial, packet, to))

    def _fire_due(self) -> None:
        now = time.monotonic()
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, packet, to = heapq.heappop(heap)
            dev = self.by_address.get(packet[12:16])
            self._send(packet, to, dev)

    def _send(self, packet: bytes, to: str, dev: Device | None) -> None:
        try:
            self.sock.sendto(packet, (to, 0))
        except OSError:
            self.totals["send_errors"] += 1
            if dev is not None:
                dev.counts["errors"] += 1
            return
        if dev is not None:
            dev.counts["replies"] += 1

    # -- control ---------------------------------------------------------------------------
    def _serve_control(self) -> None:
        try:
            conn, _ = self.ctl.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.settimeout(1.0)
            try:
                request = json.loads(_read_line(conn))
                reply = self.handle(request)
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "devices": len(self.devices)}
        if op == "epoch":
            self.epoch = time.monotonic()
            return {"ok": True}
        if op == "stats":
            return self._stats(req.get("device"))
        dev = self.find(str(req.get("device")))
        if op == "get":
            return {"ok": True, "device": dev.describe()}
        if op == "set":
            dev.faults.update(check_faults(dict(req["faults"])))
            for d in self.devices.values():
                d.refresh()
            log(f"set {dev.name}: {json.dumps(req['faults'])}")
            return {"ok": True, "device": dev.describe()}
        if op == "outage":
            dev.down_until = time.monotonic() + float(req["seconds"])
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    def find(self, ref: str) -> Device:
        if ref in self.devices:
            return self.devices[ref]
        try:
            dev = self.by_address.get(socket.inet_aton(ref))
        except OSError:
            dev = None
        if dev is None:
            raise KeyError(f"no lab device {ref!r}")
        return dev

    def _stats(self, ref: str | None) -> dict[str, Any]:
        devs = [self.find(ref)] if ref else list(self.devices.values())
        return {"ok": True, "totals": {**self.totals, "pending": len(self.heap)},
                "devices": {d.name: dict(d.counts) for d in devs}}  # fmt: skip


def _read_line(conn: socket.socket) -> bytes:
    buf = b""
    while b"\n" not in buf and len(buf) < MAX_CONTROL_BYTES:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0]


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netmon.lab.responder", description=__doc__)
    ap.add_argument("--config", required=True, help="JSON: {seed, devices: [...]}")
    ap.add_argument("--control", required=True, help="Unix socket path for run-time changes")
    ap.add_argument("--parent-pid", type=int, help="exit when this parent process goes away")
    ap.add_argument("--max-seconds", type=float, default=24 * 3600.0)
    args = ap.parse_args(argv)
    with open(args.config, encoding="utf-8") as fh:
        config = json.load(fh)
    responder = Responder(config, args.control, args.parent_pid)

    def _stop(signum: int, _frame: object) -> None:
        responder.stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop)
    responder.run(args.max_seconds)
    log("responder stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
