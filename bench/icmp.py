"""Benchmark netmon's ICMP engine against fping: throughput, CPU, sustained load, accuracy.

    python bench/icmp.py --sizes 1000,10000,20000     # loopback blast, netmon vs fping
    python bench/icmp.py --sustained                  # `netmon run`, 20,000 devices, vs fping
    python bench/icmp.py --sustained --engine-only    # the engine alone: 20,000 x 5 in one cycle
    python bench/icmp.py --accuracy                   # RTT (40 ms hosts) and loss (3 %) vs fping
    python bench/icmp.py --stall                      # false loss while the loop stalls 5 s / 15 s

Blast (default): every target is a 127.x.y.z address (the kernel answers them all), so no packet
leaves the host. Both tools ping the same targets with the same count, per-target spacing and
timeout; fping gets the targets on stdin, in chunks of at most 60,000 echoes per process (fping
5.x refuses more sequence numbers than that within its 10 s expiry window). Reported per tool:
wall time, echoes/s, CPU seconds per 1,000 echoes (netmon: RUSAGE_SELF around the ping phase
only; fping: RUSAGE_CHILDREN) and echoes lost, then the netmon/fping ratios.

Sustained (``--sustained``): netmon as a user runs it. The real ``netmon run`` command (a
subprocess, see ``bench/netmon_live.py``) over a generated inventory of 20,000 loopback devices
(``--sustained-targets``; sites of 20, ICMP only, 5 echoes 1 s apart every ``--cycle-seconds``
60 s), and beside it, in the same run, fping sending the same echoes (one ``fping -c 5 -p 1000
-i ...`` over all targets per cycle, spread evenly over the cycle like netmon's devices). After a
warm-up (at least ``--warmup`` s and until every site has a verdict and every device is up: the
first probes are spread over one interval, so before that devices have no data), CPU of every
netmon process (server and any child, from /proc: ``bench/procstat.py``) and of fping's process
tree is read at two instants ``--measure`` s apart (rounded to whole cycles, both taken when
fping is idle); prints echoes, echo/s, CPU s per 1,000 echoes of both and the ratio.

Sustained, engine only (``--sustained --engine-only``): 20,000 targets, each probed once per
cycle through the probe seam
(``run_probe(ICMP, ...)``: 5 echoes 1 s apart, 1 s timeout) at an even phase within one
``--cycle-seconds`` cycle (default 60), so ~1,700 echo/s. 10 % of the targets never answer: they
are addresses routed into a network namespace this script creates whose kernel ignores echo
requests (net.ipv4.icmp_echo_ignore_all=1); the rest are loopback addresses. Reports CPU % of one
core for the whole ICMP path (engine, probe seam, per-target tasks), CPU per 1,000 echoes, false
loss (echoes lost on answering targets) and the same cycle run by fping at the same echo rate.

Accuracy (``--accuracy``): hosts that answer after 40 ms, and hosts that drop 3 % of echoes
(deterministically: exactly 3 of every 100). They come from :class:`netmon.lab.Lab` if it can
start here (``--responder lab``), else from a small user-space responder this script runs in its
own namespace (``--responder own``; ``auto`` tries the lab first). netmon and fping ping them one
after the other; reported: mean/median RTT of each and their difference (target: within 2 ms),
and loss over 1,000 echoes of each (target: within 1 percentage point).

Stall (``--stall``): 2,000 loopback targets (all answer), each probed through ``run_probe``
(5 echoes 1 s apart, 1 s timeout) once per 15 s cycle for 60 s, while a callback blocks the
event loop (``time.sleep``) for 5 s every 15 s, as a big scrape rendered on the loop would.
Three runs in the same process: the engine as it is (kernel receive timestamps, the runner's
stall-aware deadline); the same with kernel timestamps ignored (``timestamps=False``: replies
judged by when the loop read them); and kernel timestamps with a fixed wall-clock deadline
(``asyncio.wait_for``, the runner before issue 10). Reported per run: failed probes (ok=False),
deadline failures, probes with any loss, false lost echoes (every target answers, so every lost
echo is false), late reads (received by the kernel's clock but read > 100 ms late) and the
stall the runner's meter measured. Loopback replies arrive within microseconds, so a stall finds
few of them unread; ``--stall-rtt-ms 30`` pings addresses in the bench namespace instead, which
the user-space responder answers after 30 ms, so every echo of the last 30 ms before a stall
has its reply arrive during it (as with real devices).

Needs CAP_NET_RAW or a permissive net.ipv4.ping_group_range; --sustained --engine-only and
--accuracy need root (namespaces) and iproute2. Namespace addresses: 198.19.240.0/20 and 198.19.254.0/30 (inside
198.18.0.0/15); every route is checked to leave through this script's own veth before a single
echo is sent, and the namespace is deleted on exit (also on SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import probes  # noqa: E402,F401  (registers the icmp probe)
from probes import icmp_engine, icmp_socket  # noqa: E402
from probes.base import ProbeParams, ProbeResult, Target, failed, run_probe  # noqa: E402
from probes.icmp import KIND as ICMP  # noqa: E402
from probes.icmp import IcmpEngine  # noqa: E402
from probes.icmp_resolver import Destination, parse_literal  # noqa: E402
from probes.stall import StallMeter  # noqa: E402

MAX_TARGETS = 50_000
FPING_TIMEOUT = 600.0  # seconds, hard bound on one fping run
FPING_MAX_ECHOES = 60_000  # per fping process (its sequence-number space)
SIZES = (1000, 10_000, 20_000)

# Namespace layout (all inside 198.18.0.0/15, routed only into our own veth).
HOST_LINK, NS_LINK = "198.19.254.1", "198.19.254.2"  # /30
SILENT_NET = ipaddress.ip_network("198.19.240.0/21")  # local in the namespace, never answered
RESPONDER_NET = ipaddress.ip_network("198.19.248.0/24")  # answered by the user-space responder
ROUTED_NET = "198.19.240.0/20"  # covers both; host route via NS_LINK


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# -- blast: loopback targets, netmon vs fping -------------------------------------------------------


@dataclass(frozen=True)
class Run:
    tool: str
    wall: float
    cpu: float
    sent: int
    lost: int

    @property
    def rate(self) -> float:
        return self.sent / self.wall if self.wall else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu / self.sent * 1000 if self.sent else 0.0


def targets(n: int) -> list[str]:
    """n distinct loopback addresses from 127.16.0.1 upwards."""
    return [f"127.{16 + i // 65025}.{(i // 255) % 255}.{i % 255 + 1}" for i in range(n)]


async def run_netmon(addresses: list[str], args: argparse.Namespace) -> Run:
    rate = 1000.0 / args.interval if args.interval > 0 else None
    with IcmpEngine.open(args.mode, rate_limit=rate) as engine:
        pending = list(reversed(addresses))
        sent = lost = 0

        async def worker() -> None:
            nonlocal sent, lost
            while pending:
                result = await engine.burst(pending.pop(), args.count, args.spacing, args.timeout)
                sent, lost = sent + result.sent, lost + result.lost

        workers = min(args.concurrency, len(addresses))
        bound = 60.0 + len(addresses) * args.count * (args.spacing + args.timeout)
        cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), bound)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
        extra = f"late={engine.stats.late} foreign={engine.stats.foreign}"
    return Run(f"netmon ({engine.mode}, {extra})", wall, cpu, sent, lost)


def fping_command(count: int, spacing: float, timeout: float, interval: float) -> list[str]:
    ms = round(spacing * 1000)
    return [
        *["fping", "-C", str(count), "-q", "-t", str(round(timeout * 1000))],
        *["-p", str(max(ms, 1)), "-i", f"{interval:g}", "-f", "-"],
    ]


def parse_fping(stderr: str) -> dict[str, list[float | None]]:
    """fping -C output ("127.16.0.1 : 0.05 0.01 -") as address -> RTTs in seconds."""
    out: dict[str, list[float | None]] = {}
    for line in stderr.splitlines():
        if " : " in line:
            host, values = line.split(" : ", 1)
            out[host.strip()] = [None if v == "-" else float(v) / 1000 for v in values.split()]
    return out


def run_fping_raw(addresses: list[str], cmd: list[str], bound: float) -> tuple[float, float, str]:
    """One fping process; returns (wall, CPU, stderr)."""
    cpu0, wall0 = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(
        cmd, input="\n".join(addresses) + "\n", capture_output=True, text=True, timeout=bound
    )
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    if proc.returncode > 2:  # 1: some hosts unreachable, 2: ... ; more is an fping error
        raise RuntimeError(f"fping failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return wall, cpu, proc.stderr


def run_fping(addresses: list[str], args: argparse.Namespace) -> Run:
    chunk = max(1, FPING_MAX_ECHOES // args.count)
    wall = cpu = 0.0
    received = 0
    cmd = fping_command(args.count, args.spacing, args.timeout, args.interval)
    for start in range(0, len(addresses), chunk):
        w, c, stderr = run_fping_raw(addresses[start : start + chunk], cmd, FPING_TIMEOUT)
        wall, cpu = wall + w, cpu + c
        received += sum(r is not None for rtts in parse_fping(stderr).values() for r in rtts)
    sent = len(addresses) * args.count
    chunks = -(-len(addresses) // chunk)
    return Run(
        f"fping ({chunks} process{'es' if chunks > 1 else ''})", wall, cpu, sent, sent - received
    )


def report(runs: list[Run]) -> str:
    head = f"{'tool':<44} {'wall s':>8} {'echoes':>8} {'echo/s':>10} {'CPU s/1k':>9} {'lost':>6}"
    rows = [head, "-" * len(head)]
    for r in runs:
        rows.append(
            f"{r.tool:<44} {r.wall:8.3f} {r.sent:8d} {r.rate:10.0f} {r.cpu_per_1k:9.4f} {r.lost:6d}"
        )
    if len(runs) == 2 and runs[1].wall and runs[1].cpu:
        ours, theirs = runs
        wall, rate = ours.wall / theirs.wall, ours.rate / theirs.rate
        cpu = ours.cpu_per_1k / theirs.cpu_per_1k
        rows.append(f"netmon/fping: wall x{wall:.2f}, echo/s x{rate:.2f}, CPU/1k echoes x{cpu:.2f}")
    return "\n".join(rows)


def blast(args: argparse.Namespace) -> int:
    fping = not args.skip_fping and shutil.which("fping") is not None
    if not args.skip_fping and not fping:
        print("fping not found; netmon only", file=sys.stderr)
    summary: list[tuple[int, Run, Run | None]] = []
    for size in args.sizes:
        addresses = targets(size)
        ours = asyncio.run(run_netmon(addresses, args))
        theirs = run_fping(addresses, args) if fping else None
        print(
            f"\n{size} loopback targets x {args.count} echoes, spacing {args.spacing}s, "
            f"timeout {args.timeout}s, netmon concurrency {args.concurrency}, "
            f"fping -i {args.interval:g}"
        )
        print(report([ours] + ([theirs] if theirs else [])))
        summary.append((size, ours, theirs))
    if len(summary) > 1:
        print("\nsummary: CPU s per 1,000 echoes (and echo/s)")
        print(f"{'targets':>8} {'netmon':>18} {'fping':>18} {'lost n/f':>10} {'CPU ratio':>9}")
        for size, ours, theirs in summary:
            f_cpu = f"{theirs.cpu_per_1k:.4f} ({theirs.rate:7.0f})" if theirs else "-"
            ratio = f"x{ours.cpu_per_1k / theirs.cpu_per_1k:.2f}" if theirs and theirs.cpu else "-"
            lost = f"{ours.lost}/{theirs.lost if theirs else '-'}"
            print(
                f"{size:>8} {ours.cpu_per_1k:.4f} ({ours.rate:7.0f}) {f_cpu:>18} {lost:>10} "
                f"{ratio:>9}"
            )
    return 0


# -- hot loop: the engine's send loop and drain alone, no syscalls ---------------------------------


class _LoopbackSocket:
    """Stands in for the ICMP socket: ``sendto`` queues the packet, ``recvmsg_into`` returns it
    as an echo reply from 127.0.0.1 (no control message, so RTTs are timed in user space)."""

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()

    def sendto(self, data: bytearray, addr: object) -> int:
        self.queue.append(bytes(data))
        return len(data)

    def recvmsg_into(self, bufs: list[bytearray], ancsize: int) -> tuple[int, list, int, tuple]:
        try:
            packet = self.queue.popleft()
        except IndexError:
            raise BlockingIOError from None
        buf = bufs[0]
        buf[: len(packet)] = packet
        buf[0] = icmp_socket.ICMP_ECHO_REPLY
        return len(packet), [], 0, ("127.0.0.1", 0)


def _hot_loop_run(n: int) -> float:
    """Microseconds per echo spent in ``_send_echoes`` + ``_drain`` for ``n`` one-echo bursts."""

    async def run() -> float:
        ident, cookie = secrets.randbits(16), secrets.randbits(64)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # only to build a channel
            chan = icmp_socket.Channel(socket.AF_INET, udp, "dgram", ident, cookie, False)
            engine = icmp_engine.IcmpEngine(chan, ident=ident, cookie=cookie, bufsize=1 << 16)
            chan.sock = _LoopbackSocket()  # type: ignore[assignment]
            chan.with_checksum = chan.check_ident = True  # the raw IPv4 socket's work per echo
            engine._loop = asyncio.get_running_loop()
            dest = _loopback_dest()
            bursts = [engine._schedule(chan, dest, 1, 0.0, 60.0) for _ in range(n)]
            t0 = time.perf_counter_ns()
            while engine._ready:
                engine._send_echoes(len(engine._ready))
            engine._drain(chan, 2 * n)
            elapsed = time.perf_counter_ns() - t0
            assert all(b.rtts[0] is not None for b in bursts), "an echo was not answered"
            engine._closed = True  # the sockets are not the engine's to close
            if engine._sweep_handle is not None:
                engine._sweep_handle.cancel()
            return elapsed / n / 1000

    return asyncio.run(run())


def _loopback_dest() -> Destination:
    dest = parse_literal("127.0.0.1")
    assert dest is not None
    return dest


def hot_loop(args: argparse.Namespace) -> int:
    n = args.sizes[0]
    runs = [_hot_loop_run(n) for _ in range(args.hot_loop_runs)]
    print(f"send loop + drain, {n} echoes in memory (no syscalls), {len(runs)} runs: "
          f"best {min(runs):.3f} us/echo, median {statistics.median(runs):.3f} us/echo")  # fmt: skip
    return 0


# -- the bench namespace ----------------------------------------------------------------------------


def _ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


class BenchNamespace:
    """``netmon-icmpbench-<tag>``: a veth to the host and ``ROUTED_NET`` routed into it.

    Inside, SILENT_NET and RESPONDER_NET are local (``ip route add local ... dev lo``) and the
    kernel ignores echo requests, so SILENT_NET never answers and RESPONDER_NET answers only
    through :meth:`responder`.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name, self.host_if, self.peer_if = (
            f"netmon-icmpbench-{tag}",
            f"nmb{tag}h",
            f"nmb{tag}n",
        )
        self.created = False

    def __enter__(self) -> BenchNamespace:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise SystemExit("--sustained/--accuracy need root and iproute2 (network namespace)")
        for net in (f"{HOST_LINK}/30", ROUTED_NET):
            if _ip("-4", "-o", "addr", "show", "to", net).strip():
                raise SystemExit(f"{net} is already in use on this host; not touching it")
            inside = _ip("-4", "route", "show", "root", net).strip()
            if inside:  # a route to (part of) our block other than a wider one, e.g. the lab's /15
                raise SystemExit(
                    f"the host already routes {inside.splitlines()[0]}; not touching it"
                )
        self.created = True
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if,
                "netns", self.name)  # fmt: skip
            _ip("addr", "add", f"{HOST_LINK}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("route", "add", ROUTED_NET, "via", NS_LINK, "dev", self.host_if)
            _ip("-n", self.name, "addr", "add", f"{NS_LINK}/30", "dev", self.peer_if)
            _ip("-n", self.name, "link", "set", self.peer_if, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
            for local in (SILENT_NET, RESPONDER_NET):
                _ip("-n", self.name, "route", "add", "local", str(local), "dev", "lo")
            _ip("netns", "exec", self.name, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
            for probe in (SILENT_NET[1], SILENT_NET[-2], RESPONDER_NET[1]):
                route = _ip("-4", "route", "get", str(probe)).split()
                if route[route.index("dev") + 1] != self.host_if:
                    raise SystemExit(f"{probe} would not go into the bench namespace: {route}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
            self.created = False

    def silent(self, n: int) -> list[str]:
        hosts = (str(a) for a in SILENT_NET.hosts() if int(a) & 0xFF not in (0, 255))
        out = [a for _, a in zip(range(n), hosts, strict=False)]
        if len(out) < n:
            raise SystemExit(f"at most {len(out)} silent targets")
        return out

    @contextlib.contextmanager
    def responder(self, hosts: dict[str, tuple[float, float]], life: float) -> Iterator[None]:
        """Answer echoes to ``hosts`` (address -> (delay s, loss ratio)) for at most ``life`` s."""
        spec = ",".join(f"{a}={d}={p}" for a, (d, p) in hosts.items())
        cmd = ["ip", "netns", "exec", self.name, sys.executable, "-c", RESPONDER, spec, str(life)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            yield
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


# A user-space echo responder for the namespace: per address a delay and a loss ratio. Loss is
# deterministic (echo n of an address is dropped when floor((n+1)p) > floor(np)), so every run of
# 1,000 echoes at 3 % loses exactly 30 and two tools pinging one after the other see the same
# rate. Replies are built with IP_HDRINCL so their source is the pinged address.
RESPONDER = r"""
import heapq, math, select, socket, struct, sys, time
hosts = {}
for item in sys.argv[1].split(","):
    addr, delay, loss = item.split("=")
    hosts[socket.inet_aton(addr)] = [float(delay), float(loss), 0]
end = time.monotonic() + float(sys.argv[2])
def csum(b):
    t = sum(struct.unpack(f"!{len(b) // 2}H", b + b"\0" * (len(b) % 2)))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
rx.setsockopt(255, 1, struct.pack("I", ~(1 << 8) & 0xFFFFFFFF))  # ICMP_FILTER: requests only
rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE: a burst after a stall fits
rx.setblocking(False)
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL
due, n = [], 0
print("ready", flush=True)
while time.monotonic() < end:
    timeout = max(0.0, min(0.2, due[0][0] - time.monotonic())) if due else 0.2
    if select.select([rx], [], [], timeout)[0]:
        for _ in range(1024):
            try:
                data = rx.recv(4096)
            except BlockingIOError:
                break
            hl = (data[0] & 15) * 4
            dst, src = data[16:20], data[12:16]
            host = hosts.get(dst)
            if host is None or data[hl] != 8:
                continue
            delay, loss, seen = host
            host[2] = seen + 1
            if math.floor((seen + 1) * loss) > math.floor(seen * loss):
                continue
            body = b"\0\0\0\0" + data[hl + 4:]
            body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 1, 0, dst, src)
            n += 1
            heapq.heappush(due, (time.monotonic() + delay, n, ip + body, socket.inet_ntoa(src)))
    now = time.monotonic()
    while due and due[0][0] <= now:
        _, _, packet, to = heapq.heappop(due)
        tx.sendto(packet, (to, 0))
"""


def _install_signal_exit() -> None:
    """SIGTERM/SIGHUP raise SystemExit so ``with BenchNamespace()`` always cleans up."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


# -- sustained: one cycle of 20,000 targets through the probe seam ---------------------------------


@dataclass
class SustainedResult:
    tool: str
    wall: float
    cpu: float
    sent: int
    lost_up: int  # false loss: echoes lost on targets that answer
    lost_down: int
    sent_down: int
    notes: str = ""

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu / self.wall if self.wall else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu / self.sent * 1000 if self.sent else 0.0


async def sustained_netmon(
    up: list[str], down: list[str], args: argparse.Namespace
) -> SustainedResult:
    rng = random.Random(7)
    plan = [(a, True) for a in up] + [(a, False) for a in down]
    rng.shuffle(plan)  # down targets spread over the cycle
    cycle = args.cycle_seconds
    params = ProbeParams(count=args.count, spacing=args.sustained_spacing, timeout=args.timeout)
    sent = lost_up = lost_down = sent_down = 0
    peak = 0
    with IcmpEngine.open(args.mode) as engine:
        tasks: set[asyncio.Task[None]] = set()

        async def one(address: str, answers: bool) -> None:
            nonlocal sent, lost_up, lost_down, sent_down
            target = Target(site="bench", device=address, address=address)
            result = await run_probe(ICMP, engine, target, params)
            sent += result.sent
            if answers:
                lost_up += result.sent - result.received
            else:
                sent_down += result.sent
                lost_down += result.sent - result.received

        loop = asyncio.get_running_loop()
        cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        start = loop.time()
        step = cycle / len(plan)
        i = 0
        while i < len(plan):  # bounded: one pass over the plan
            now = loop.time() - start
            while i < len(plan) and i * step <= now + 0.002:  # start what is due (2 ms batches)
                task = asyncio.create_task(one(*plan[i]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            peak = max(peak, engine.in_flight)
            if i < len(plan):
                await asyncio.sleep(max(0.0, i * step - (loop.time() - start)))
        bound = params.deadline + 10.0
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), bound)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(resource.RUSAGE_SELF) - cpu0
        s = engine.stats
        notes = (
            f"late={s.late} foreign={s.foreign} kernel drops={engine.kernel_drops()} "
            f"user timestamps={s.user_timestamps} peak in flight={peak}"
        )
    return SustainedResult(
        f"netmon ({engine.mode})", wall, cpu, sent, lost_up, lost_down, sent_down, notes
    )


def sustained_fping(up: list[str], down: list[str], args: argparse.Namespace) -> SustainedResult:
    """The same echoes at the same average rate: fping round-robins all targets every -i ms."""
    rng = random.Random(7)
    order = up + down
    rng.shuffle(order)
    interval_ms = args.cycle_seconds * 1000 / (len(order) * args.count)
    cmd = fping_command(args.count, args.sustained_spacing, args.timeout, round(interval_ms, 3))
    wall, cpu, stderr = run_fping_raw(order, cmd, args.cycle_seconds * 3 + 60)
    rtts = parse_fping(stderr)
    down_set = set(down)
    lost_up = sum(v is None for a, vs in rtts.items() if a not in down_set for v in vs)
    lost_down = sum(v is None for a, vs in rtts.items() if a in down_set for v in vs)
    missing = len(order) - len(rtts)
    notes = f"-i {interval_ms:.3f} ms" + (
        f"; {missing} targets missing in output" if missing else ""
    )
    sent = len(order) * args.count
    return SustainedResult(
        "fping", wall, cpu, sent, lost_up, lost_down, len(down) * args.count, notes
    )


def sustained(args: argparse.Namespace) -> int:
    n_down = round(args.sustained_targets * args.down_ratio)
    up = targets(args.sustained_targets - n_down)
    rate = args.sustained_targets * args.count / args.cycle_seconds
    with BenchNamespace() as ns:
        down = ns.silent(n_down)
        print(
            f"sustained: {args.sustained_targets} targets ({n_down} never answer) x {args.count} "
            f"echoes {args.sustained_spacing}s apart, timeout {args.timeout}s, one "
            f"{args.cycle_seconds:g}s cycle = {rate:.0f} echo/s"
        )
        runs = [asyncio.run(sustained_netmon(up, down, args))]
        fping_ok = rate * 10 <= FPING_MAX_ECHOES  # fping's sequence space over its 10 s expiry
        if not args.skip_fping and shutil.which("fping") and fping_ok:
            runs.append(sustained_fping(up, down, args))
        elif not fping_ok:
            print(f"(fping skipped: {rate:.0f} echo/s is beyond its sequence-number space)")
    head = (
        f"{'tool':<14} {'wall s':>7} {'echoes':>7} {'CPU s':>7} {'CPU %':>6} {'CPU s/1k':>9} "
        f"{'false loss':>10} {'down lost':>12}"
    )
    print(head + "\n" + "-" * len(head))
    for r in runs:
        print(
            f"{r.tool:<14} {r.wall:7.1f} {r.sent:7d} {r.cpu:7.2f} {r.cpu_percent:6.2f} "
            f"{r.cpu_per_1k:9.4f} {r.lost_up:10d} {f'{r.lost_down}/{r.sent_down}':>12}"
        )
        print(f"  {r.notes}")
    if len(runs) == 2 and runs[1].cpu:
        print(f"netmon/fping CPU per echo: x{runs[0].cpu_per_1k / runs[1].cpu_per_1k:.2f}")
    return 0


# -- sustained, whole process: `netmon run` over N loopback devices vs fping -----------------------


def sustained_whole(args: argparse.Namespace) -> int:
    import tempfile

    import netmon_live as live

    live.raise_open_files()
    inv = live.LoopbackInventory(
        args.sustained_targets, args.per_site, args.cycle_seconds, args.count,
        args.sustained_spacing, args.timeout,
    )  # fmt: skip
    fping = not args.skip_fping and Path(live.FPING).exists()
    cycles_n = max(1, round(args.measure / inv.interval))
    print(f"sustained, whole process: {inv.describe()}")
    print(f"  fping: {'the same echoes, one run per cycle' if fping else 'skipped'}; warm-up "
          f">= {args.warmup:g}s until every site is fully functional and every device probed (at most "
          f"{args.warmup_max:g}s); measured: {cycles_n} cycle(s)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="netmon-bench-") as tmp:
        work = Path(tmp)
        with live.NetmonRun(inv, work) as netmon, netmon.client() as client:
            print(f"  {netmon.command}")
            print(f"  serving after {netmon.wait_serving(client, 600):.1f}s")
            bound = math.ceil((args.warmup_max + args.measure) / inv.interval) + 4
            with live.Cycles(inv, netmon, fping, work, cycles=bound) as cycles:
                warm_at, state, ok = live.warm_up(netmon, client, args.warmup, args.warmup_max)
                print(f"  warm-up {'done' if ok else 'NOT REACHED'} after "
                      f"{warm_at - netmon.started:.0f}s: {state}")  # fmt: skip
                start = cycles.next_mark(warm_at, inv.interval * 2 + 60)
                end_after = start.at + (cycles_n - 0.5) * inv.interval
                end = cycles.next_mark(end_after, (cycles_n + 1) * inv.interval + 60)
                processes = netmon.processes()
                print(f"  {cycles.describe()}")
            after = live.readiness(netmon.scrape(client).text)  # one full scrape, at the end
            rows = live.figures(start, end, fping)
            events = live.event_deltas(start, end)
            problems = cycles.problems
    print(f"  netmon processes: {processes}")
    print(f"  after the interval (one full /metrics scrape): {after.describe(inv)}")
    print()
    print("\n".join(live.cpu_table(rows)))
    shown = ("timed_out", "late", "foreign", "kernel_drops", "send_errors", "send_retries")
    print("netmon engine during the interval: "
          + ", ".join(f"{k}={events[k]:.0f}" for k in shown if k in events))  # fmt: skip
    for problem in problems:
        print(f"problem: {problem}")
    return 0 if ok else 1


# -- stall: the loop blocked 5 s every 15 s while 2,000 targets are probed ------------------------


@dataclass
class StallRun:
    clock: str
    runner: str
    probes: int = 0
    failed: int = 0  # ok=False
    deadline: int = 0  # failed by the runner's deadline
    with_loss: int = 0
    sent: int = 0
    lost: int = 0  # every target answers: every lost echo is a false loss
    stalls: int = 0
    measured_stall: float = 0.0  # s, the runner's stall meter
    stats: str = ""


async def _fixed_deadline(engine: IcmpEngine, target: Target, params: ProbeParams) -> ProbeResult:
    """The runner before issue 10: a wall-clock ``asyncio.wait_for`` around the probe."""
    started = time.time()
    try:
        return await asyncio.wait_for(ICMP.probe(engine, target, params), params.deadline)
    except TimeoutError:
        return failed(ICMP.name, started, f"probe exceeded its {params.deadline:.1f}s deadline")


async def stall_run(
    addresses: list[str], args: argparse.Namespace, timestamps: bool, stall_aware: bool
) -> StallRun:
    params = ProbeParams(count=args.count, spacing=args.sustained_spacing, timeout=args.timeout)
    run = StallRun("kernel" if timestamps else "user (read time)",
                   "stall-aware" if stall_aware else "fixed wall-clock")  # fmt: skip
    loop = asyncio.get_running_loop()
    meter = StallMeter.of(loop)
    stall0 = meter.stalled()

    def stall() -> None:
        time.sleep(args.stall_seconds)  # the loop does nothing else meanwhile
        run.stalls += 1

    async def one(engine: IcmpEngine, address: str) -> None:
        target = Target(site="bench", device=address, address=address)
        if stall_aware:
            result = await run_probe(ICMP, engine, target, params)
        else:
            result = await _fixed_deadline(engine, target, params)
        run.probes += 1
        run.failed += not result.ok
        run.deadline += result.reason.startswith("probe exceeded")
        run.with_loss += result.received < result.sent or not result.sent
        run.sent += result.sent
        run.lost += result.sent - result.received

    with IcmpEngine.open(args.mode, timestamps=timestamps) as engine:  # type: ignore[arg-type]
        start = loop.time()
        at = args.stall_first
        while at + args.stall_seconds <= args.stall_duration:  # bounded: duration / every
            loop.call_at(start + at, stall)
            at += args.stall_every
        total = len(addresses) * round(args.stall_duration / args.stall_cycle)
        step = args.stall_cycle / len(addresses)
        tasks: set[asyncio.Task[None]] = set()
        for i in range(total):  # bounded: one start per planned probe
            delay = start + i * step - loop.time()
            if delay > 0.002:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(engine, addresses[i % len(addresses)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            bound = 10 * params.deadline + args.stall_seconds
            await asyncio.wait_for(asyncio.gather(*tasks), bound)
        s = engine.stats
        run.stats = (
            f"late_reads={s.late_reads} late={s.late} timed_out={s.timed_out} "
            f"no_kernel_timestamp={s.no_kernel_timestamp} user_timestamps={s.user_timestamps} "
            f"kernel drops={engine.kernel_drops()}"
        )
    run.measured_stall = meter.stalled() - stall0
    return run


def stall_bench(args: argparse.Namespace) -> int:
    if args.stall_rtt_ms <= 0:
        return _stall_report(targets(args.stall_targets), args, "loopback targets")
    with BenchNamespace() as ns:
        addresses = ns.silent(args.stall_targets)  # silent to the kernel; the responder answers
        hosts = {a: (args.stall_rtt_ms / 1000, 0.0) for a in addresses}
        with ns.responder(hosts, life=args.stall_duration * 3 + 120):
            what = f"namespace targets answered after {args.stall_rtt_ms:g} ms"
            return _stall_report(addresses, args, what)


def _stall_report(addresses: list[str], args: argparse.Namespace, what: str) -> int:
    n_stalls = int((args.stall_duration - args.stall_first - args.stall_seconds)
                   // args.stall_every) + 1  # fmt: skip
    print(
        f"stall: {len(addresses)} {what} x {args.count} echoes "
        f"{args.sustained_spacing}s apart, timeout {args.timeout}s, each probed every "
        f"{args.stall_cycle:g}s for {args.stall_duration:g}s through the probe seam; the loop "
        f"blocked {args.stall_seconds:g}s every {args.stall_every:g}s ({n_stalls} stalls)"
    )
    configs = [(True, True), (False, True), (True, False)]
    runs = [asyncio.run(stall_run(addresses, args, ts, aware)) for ts, aware in configs]
    head = (
        f"{'clock':<17} {'deadline':<17} {'probes':>6} {'failed':>6} {'by deadline':>11} "
        f"{'with loss':>9} {'echoes':>7} {'false lost':>10} {'stall s':>7}"
    )
    print(head + "\n" + "-" * len(head))
    for r in runs:
        print(
            f"{r.clock:<17} {r.runner:<17} {r.probes:6d} {r.failed:6d} {r.deadline:11d} "
            f"{r.with_loss:9d} {r.sent:7d} {r.lost:10d} "
            f"{f'{r.measured_stall:.1f}' if r.runner == 'stall-aware' else '-':>7}"
        )
        print(f"  stalls done {r.stalls}; {r.stats}")
    return 0


# -- accuracy: RTT on 40 ms hosts, loss on 3 % hosts ----------------------------------------------


@dataclass
class Hosts:
    delayed: list[str]
    lossy: list[str]
    source: str


@contextlib.contextmanager
def lab_hosts(args: argparse.Namespace) -> Iterator[Hosts]:
    """Delayed and lossy hosts from netmon.lab (raises if the lab cannot start here)."""
    from netmon.lab import Lab
    from netmon.lab.model import parse_scenario

    devices = [f"    - {{name: delay-{i:02d}, role: wan, faults: {{delay: {args.delay}}}}}"
               for i in range(args.hosts)]  # fmt: skip
    devices += [f"    - {{name: loss-{i:02d}, role: wan, faults: {{loss: {args.loss}}}}}"
                for i in range(args.hosts)]  # fmt: skip
    text = "\n".join([
        "id: icmp-bench", "description: bench/icmp.py accuracy hosts", "site:",
        "  id: lab-icmp-bench", "  name: ICMP bench (lab)", "  district: Ranchi", "  type: chc",
        "  devices:", *devices,
    ])  # fmt: skip
    with Lab([parse_scenario(text, "bench/icmp.py")], snmp=False, max_seconds=600) as lab:
        key = "lab-icmp-bench/{}"
        yield Hosts(
            [lab.address(key.format(f"delay-{i:02d}")) for i in range(args.hosts)],
            [lab.address(key.format(f"loss-{i:02d}")) for i in range(args.hosts)],
            "netmon.lab (responder with stratified loss)",
        )


@contextlib.contextmanager
def own_hosts(args: argparse.Namespace) -> Iterator[Hosts]:
    delayed = [str(RESPONDER_NET[1 + i]) for i in range(args.hosts)]
    lossy = [str(RESPONDER_NET[101 + i]) for i in range(args.hosts)]
    spec = {a: (args.delay_s, 0.0) for a in delayed} | {a: (0.0, args.loss) for a in lossy}
    with BenchNamespace() as ns, ns.responder(spec, life=600):
        yield Hosts(delayed, lossy, f"own user-space responder in {ns.name}")


def _ms(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
    return (
        f"mean {statistics.fmean(values) * 1000:7.3f}  median {statistics.median(values) * 1000:7.3f}"
        f"  p5 {q[0] * 1000:7.3f}  p95 {q[-1] * 1000:7.3f}  max {max(values) * 1000:7.3f}"
    )


async def _netmon_bursts(
    addresses: list[str], count: int, spacing: float, mode: str
) -> dict[str, list[float | None]]:
    """Like fping -p spacing -i spacing/len(addresses): bursts staggered by the -i interval."""
    stagger = spacing / len(addresses)

    async def one(engine: IcmpEngine, k: int, address: str) -> list[float | None]:
        await asyncio.sleep(k * stagger)
        return list((await engine.burst(address, count, spacing, 1.0)).rtts)

    with IcmpEngine.open(mode) as engine:  # type: ignore[arg-type]
        results = await asyncio.wait_for(
            asyncio.gather(*(one(engine, k, a) for k, a in enumerate(addresses))),
            count * spacing + 30,
        )
    return dict(zip(addresses, results, strict=True))


def accuracy(args: argparse.Namespace) -> int:
    if shutil.which("fping") is None:
        raise SystemExit("--accuracy compares with fping, which is not installed")
    args.delay_s = args.delay_ms / 1000
    args.delay = f"{args.delay_ms:g}ms"
    per_host = -(-args.echoes // args.hosts)  # echoes per host so that the total >= --echoes
    with contextlib.ExitStack() as stack:
        hosts = None
        if args.responder in ("auto", "lab"):
            try:
                hosts = stack.enter_context(lab_hosts(args))
            except Exception as exc:  # the lab is another engineer's: it may be busy or changing
                if args.responder == "lab":
                    raise
                why = " ".join(str(exc).split())[:200]
                print(f"(netmon.lab cannot start here, using the own responder: {why})")
        if hosts is None:
            hosts = stack.enter_context(own_hosts(args))
        print(f"accuracy hosts: {hosts.source}")
        # Same pacing for both: each host every --accuracy-spacing s, one echo every
        # spacing/hosts s overall (fping -p/-i; netmon bursts staggered by -i).
        spacing, mode = args.accuracy_spacing, args.mode
        cmd = fping_command(per_host, spacing, 1.0, round(spacing * 1000 / args.hosts, 3))
        # RTT on the delayed hosts, then loss on the lossy ones: netmon, then fping.
        ours = asyncio.run(_netmon_bursts(hosts.delayed, per_host, spacing, mode))
        theirs = parse_fping(run_fping_raw(hosts.delayed, cmd, 120)[2])
        ours_l = asyncio.run(_netmon_bursts(hosts.lossy, per_host, spacing, mode))
        theirs_l = parse_fping(run_fping_raw(hosts.lossy, cmd, 120)[2])
    o = [r for rs in ours.values() for r in rs if r is not None]
    t = [r for rs in theirs.values() for r in rs if r is not None]
    n_o = sum(len(v) for v in ours_l.values())
    n_t = sum(len(v) for v in theirs_l.values())
    lo = 100 * sum(r is None for v in ours_l.values() for r in v) / n_o
    lt = 100 * sum(r is None for v in theirs_l.values() for r in v) / n_t
    print(f"\nRTT on {len(hosts.delayed)} hosts delayed {args.delay} "
          f"({per_host} echoes each, {args.accuracy_spacing}s apart), ms:")  # fmt: skip
    print(f"  netmon  {_ms(o)}  ({len(o)} replies)")
    print(f"  fping   {_ms(t)}  ({len(t)} replies)")
    diff_mean = (statistics.fmean(o) - statistics.fmean(t)) * 1000
    diff_med = (statistics.median(o) - statistics.median(t)) * 1000
    ok = "ok" if abs(diff_mean) <= 2 and abs(diff_med) <= 2 else "OUT OF TARGET"
    print(f"  netmon - fping: mean {diff_mean:+.3f} ms, median {diff_med:+.3f} ms "
          f"(target within +-2 ms: {ok})")  # fmt: skip
    ok = "ok" if abs(lo - lt) <= 1 else "OUT OF TARGET"
    print(f"\nloss on {len(hosts.lossy)} hosts dropping {args.loss:.0%}: netmon {lo:.2f} % of "
          f"{n_o}, fping {lt:.2f} % of {n_t}: difference {lo - lt:+.2f} pp "
          f"(target within +-1 pp: {ok})")  # fmt: skip
    return 0


# -- command line -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, help=f"one blast size (<= {MAX_TARGETS})")
    p.add_argument(
        "--sizes",
        default="1000,10000,20000",
        help="comma-separated blast sizes (default: %(default)s)",
    )
    p.add_argument("--count", type=int, default=5, help="echoes per target (default 5)")
    p.add_argument("--concurrency", type=int, default=1000, help="netmon bursts in flight (blast)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply")
    p.add_argument(
        "--spacing", type=float, default=0.02, help="blast: s between echoes of a target"
    )
    p.add_argument(
        "--interval",
        type=float,
        default=0,
        help="fping -i ms; >0 also caps netmon at 1000/ms echo/s",
    )
    p.add_argument("--mode", default="auto", choices=["auto", "raw", "dgram"])
    p.add_argument("--skip-fping", action="store_true")
    p.add_argument("--sustained", action="store_true", help="`netmon run` vs fping, whole process")
    p.add_argument(
        "--engine-only", action="store_true", help="sustained: the engine alone, one cycle"
    )
    p.add_argument("--sustained-targets", type=int, default=20_000)
    p.add_argument(
        "--cycle-seconds", type=float, default=60.0, help="sustained cycle (probe interval)"
    )
    p.add_argument("--per-site", type=int, default=20, help="sustained: devices per site")
    p.add_argument("--warmup", type=float, default=60.0, help="sustained: minimum warm-up seconds")
    p.add_argument(
        "--warmup-max", type=float, default=300.0, help="sustained: warm-up bound seconds"
    )
    p.add_argument(
        "--measure", type=float, default=120.0, help="sustained: measured seconds (whole cycles)"
    )
    p.add_argument(
        "--sustained-spacing", type=float, default=1.0, help="sustained: s between echoes"
    )
    p.add_argument("--down-ratio", type=float, default=0.1, help="sustained: share never answering")
    p.add_argument("--accuracy", action="store_true", help="RTT/loss agreement with fping")
    p.add_argument(
        "--hot-loop", action="store_true", help="send loop + drain alone (in-memory socket)"
    )
    p.add_argument("--hot-loop-runs", type=int, default=7, help="hot loop: runs (best, median)")
    p.add_argument("--stall", action="store_true", help="false loss while the loop stalls")
    p.add_argument("--stall-targets", type=int, default=2000, help="stall: loopback targets")
    p.add_argument("--stall-cycle", type=float, default=15.0, help="stall: s between probes")
    p.add_argument("--stall-duration", type=float, default=60.0, help="stall: s of probing")
    p.add_argument("--stall-seconds", type=float, default=5.0, help="stall: length of a stall")
    p.add_argument("--stall-every", type=float, default=15.0, help="stall: s between stalls")
    p.add_argument("--stall-first", type=float, default=5.0, help="stall: s before the first")
    p.add_argument(
        "--stall-rtt-ms", type=float, default=0.0, help="stall: >0 pings namespace hosts this late"
    )
    p.add_argument("--responder", default="auto", choices=["auto", "lab", "own"])
    p.add_argument("--hosts", type=int, default=10, help="accuracy: delayed hosts and lossy hosts")
    p.add_argument("--echoes", type=int, default=1000, help="accuracy: echoes per tool and kind")
    p.add_argument("--delay-ms", type=float, default=40.0, help="accuracy: reply delay")
    p.add_argument("--loss", type=float, default=0.03, help="accuracy: loss ratio")
    p.add_argument(
        "--accuracy-spacing", type=float, default=0.02, help="accuracy: s between echoes"
    )
    args = p.parse_args(argv)
    args.sizes = [args.targets] if args.targets else [int(s) for s in args.sizes.split(",") if s]
    if not all(0 < n <= MAX_TARGETS for n in args.sizes):
        p.error(f"target counts must be 1..{MAX_TARGETS}")
    if not 0 < args.count <= 100 or args.concurrency < 1 or args.timeout <= 0:
        p.error("need 1 <= --count <= 100, --concurrency >= 1 and --timeout > 0")
    if not 0 < args.sustained_targets <= MAX_TARGETS or not 1 <= args.cycle_seconds <= 600:
        p.error(f"need 1 <= --sustained-targets <= {MAX_TARGETS}, 1 <= --cycle-seconds <= 600")
    if not 0 <= args.warmup <= args.warmup_max <= 1800 or not 1 <= args.measure <= 1800:
        p.error("need 0 <= --warmup <= --warmup-max <= 1800 and 1 <= --measure <= 1800")
    if not 0 <= args.down_ratio <= 0.5 or not 0 < args.hosts <= 50 or not 0 < args.echoes <= 20_000:
        p.error("need 0 <= --down-ratio <= 0.5, 1 <= --hosts <= 50, 1 <= --echoes <= 20000")
    if not 0 < args.delay_ms <= 500 or not 0 <= args.loss < 1 or args.accuracy_spacing < 0.001:
        p.error("need 0 < --delay-ms <= 500, 0 <= --loss < 1, --accuracy-spacing >= 0.001")
    if (
        not 0 < args.stall_targets <= MAX_TARGETS
        or not 1 <= args.stall_cycle <= args.stall_duration
    ):
        p.error(f"need 1 <= --stall-targets <= {MAX_TARGETS}, 1 <= --stall-cycle <= duration")
    if not args.stall_duration <= 600 or not 0 < args.stall_seconds < args.stall_every:
        p.error("need --stall-duration <= 600 and 0 < --stall-seconds < --stall-every")
    if not 0 <= args.stall_first <= args.stall_duration - args.stall_seconds:
        p.error("need 0 <= --stall-first <= --stall-duration - --stall-seconds")
    if not 0 <= args.stall_rtt_ms <= 500 or (args.stall_rtt_ms and args.stall_targets > 2000):
        p.error("need 0 <= --stall-rtt-ms <= 500, and --stall-targets <= 2000 with it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _install_signal_exit()
    if args.sustained and args.engine_only:
        return sustained(args)
    if args.sustained:
        return sustained_whole(args)
    if args.accuracy:
        return accuracy(args)
    if args.stall:
        return stall_bench(args)
    if args.hot_loop:
        return hot_loop(args)
    return blast(args)


if __name__ == "__main__":
    sys.exit(main())
