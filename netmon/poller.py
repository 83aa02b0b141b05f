"""The poller: scheduler + probe engines, and nothing else. It probes; the server judges.

``netmon run`` starts it as a child process of its own (``python -m netmon.poller --fd N``) so
that nothing the server does -- a scrape, a big API query, a reload, a slow database -- can
delay an echo or a deadline: the two share no event loop, no GIL. Results go back to the server
over the results channel (``netmon.channel``) in batches; the server's side of it is
``netmon.poller_link``. The same :class:`Poller` runs inside the server (``--poller inline``,
and the unit tests), then its results go straight to the monitor.

Flow inside the poller: a ``config`` message (the server's validated configuration) opens the
engines (or reconfigures them) and replaces the job set -- one job per (site, device, kind),
each kind's ``job()`` giving its interval and params; the scheduler runs each job on its own
phase; each result is handed to the sink. A ``poll_now`` message (a trap's hint) probes one
device at once with every kind it has, its schedule unchanged. The child sends what it has taken every
``BATCH_EVERY`` seconds and its counters every ``STATS_EVERY`` seconds; it exits when the server
says ``stop`` or its channel closes (a server that died), never leaving probes running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from netmon import __version__, heap
from netmon.channel import Channel, encode_result
from netmon.errors import NetmonError
from netmon.scheduler import Job, Scheduler
from probes import KINDS, Engines, ProbeKind, ProbeResult, Target, run_probe
from probes.base import Params

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.inventory import Device, Inventory, Site

log = logging.getLogger("netmon.poller")

Sink = Callable[[str, str, ProbeResult], None]  # (site id, device name, result)
BATCH_EVERY = 0.2  # seconds between result batches sent to the server
STATS_EVERY = 1.0  # seconds between counter updates sent to the server (/metrics reads them)


@dataclass(frozen=True, slots=True)
class ProbeJob:
    site: Site
    device: Device
    kind: ProbeKind[Any, Any]
    params: Params = field(repr=False)


@dataclass(frozen=True)
class PollerStats:
    """What a poller reports of itself (JSON-able: it crosses the channel as is)."""

    lag: float = 0.0  # seconds: how late probes start against their schedule
    overruns: int = 0
    started: int = 0  # probes started
    jobs: int = 0
    engines: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> event -> count
    modes: dict[str, str] = field(default_factory=dict)  # e.g. {"icmp": "raw"}
    pid: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PollerStats:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def build_jobs(inventory: Inventory) -> list[Job]:
    """One job per (site, device, kind): each kind's ``job()`` gives interval and params. Pure:
    a reload builds them first, before anything is swapped (a failure keeps the old run)."""
    out: list[Job] = []
    for site in inventory.sites:
        for dev in site.devices:
            for kind in (KINDS[k] for k in dev.kinds if k in KINDS):
                spec = kind.job(inventory, site, dev)
                job = ProbeJob(site, dev, kind, spec.params)
                out.append(Job((site.id, dev.name, kind.name), spec.interval, job))
    return out


class Poller:
    """Probes the devices of an inventory on their schedules; each result goes to ``sink``."""

    def __init__(self, sink: Sink, engines: Engines | None = None) -> None:
        self.sink = sink
        self.engines = engines if engines is not None else Engines()
        self.scheduler = Scheduler(self._probe)

    def jobs(self, inventory: Inventory) -> list[Job]:
        return build_jobs(inventory)

    def assign(self, inventory: Inventory) -> None:
        """Probe this inventory from now on; devices that stay keep their schedule, the
        engines forget the state of devices that left (e.g. SNMP counters, reboot times)."""
        jobs = self.jobs(inventory)
        for key in self.scheduler.jobs.keys() - {j.key for j in jobs}:
            site_id, device, name = cast(tuple[str, str, str], key)  # the keys jobs() makes
            KINDS[name].forget(self.engines.named(name), site_id, device)
        self.scheduler.update(jobs)

    def poll_now(self, site_id: str, device: str) -> int:
        """Probe one device now with every kind it has, off schedule; how many probes started."""
        keys = [
            k for k in self.scheduler.jobs if isinstance(k, tuple) and k[:2] == (site_id, device)
        ]
        return sum(self.scheduler.run_now(key) for key in keys)

    async def _probe(self, job: Job) -> None:
        pj = job.payload
        assert isinstance(pj, ProbeJob)
        target = Target(pj.site.id, pj.device.name, pj.device.address or "", pj.device.role)
        result = await run_probe(pj.kind, self.engines.named(pj.kind.name), target, pj.params)
        self.sink(pj.site.id, pj.device.name, result)

    def stats(self) -> PollerStats:
        engines: dict[str, dict[str, int]] = {}
        modes: dict[str, str] = {}
        for kind in KINDS.values():
            engine = self.engines.named(kind.name)
            engines[kind.name] = {k: int(v) for k, v in kind.engine_stats(engine).items()}
            mode = getattr(engine, "mode", None)
            if isinstance(mode, str):
                modes[kind.name] = mode
        s = self.scheduler
        return PollerStats(s.lag, s.overruns, s.started, len(s.jobs), engines, modes, os.getpid())

    async def run(self) -> None:
        await self.scheduler.run_forever()

    async def stop(self) -> None:
        await self.scheduler.stop()


# --- the child process --------------------------------------------------------------------------
class _ChildPoller:
    """The poller process's main loop: one channel to the server, one :class:`Poller`."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.poller: Poller | None = None
        self.batch: list[list[Any]] = []
        self.sent = 0

    def _take(self, site: str, device: str, result: ProbeResult) -> None:
        self.batch.append(encode_result(site, device, result))

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            while (message := await self.channel.receive()) is not None:
                if message["type"] == "stop":
                    break
                if message["type"] == "poll_now" and self.poller is not None:
                    self.poller.poll_now(str(message["site"]), str(message["device"]))
                    continue
                configured = message["type"] == "config" and await self._configure(
                    message["config"]
                )
                if configured and not tasks:
                    tasks = self._start()
                    heap.settle()  # inventory, jobs, engines: long-lived (netmon.heap)
        finally:
            await self._finish(tasks)

    async def _configure(self, config: ValidatedConfig) -> bool:
        if self.poller is None:
            try:
                engines = await Engines.open(config)
            except NetmonError as exc:
                await self.channel.send({"type": "hello", "version": __version__,
                                         "pid": os.getpid(), "error": str(exc)})  # fmt: skip
                return False
            self.poller = Poller(self._take, engines)
            hello = {"type": "hello", "version": __version__, "pid": os.getpid()}
            await self.channel.send({**hello, "modes": self.poller.stats().modes})
            self.poller.assign(config.inventory)
        else:
            try:  # the server built these jobs before it sent them: a failure here is a bug
                self.poller.engines.reconfigure(config)
                self.poller.assign(config.inventory)
            except Exception:
                log.exception("reload failed in the poller: it keeps probing what it had")
        log.info("probing %d jobs", len(self.poller.scheduler.jobs))
        return True

    def _start(self) -> list[asyncio.Task[None]]:
        assert self.poller is not None
        return [
            asyncio.create_task(self.poller.run(), name="scheduler"),
            asyncio.create_task(self._every(BATCH_EVERY, self._send_batch), name="batches"),
            asyncio.create_task(self._every(STATS_EVERY, self._send_stats), name="stats"),
        ]

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            await fn()

    async def _send_batch(self) -> None:
        if self.batch:
            items, self.batch = self.batch, []
            await self.channel.send({"type": "results", "items": items})
            self.sent += len(items)

    async def _send_stats(self) -> None:
        if self.poller is not None:
            await self.channel.send({"type": "stats", **asdict(self.poller.stats())})

    async def _finish(self, tasks: list[asyncio.Task[None]]) -> None:
        """Stop probing, send every result taken and the last counters, say bye."""
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.poller is not None:
            await self.poller.stop()
        with contextlib.suppress(ConnectionError, OSError):
            await self._send_batch()
            await self._send_stats()
            await self.channel.send({"type": "bye", "results": self.sent})
        if self.poller is not None:
            await self.poller.engines.close()
        await self.channel.close()


async def _child_main(fd: int) -> None:
    import probes  # noqa: F401 (registers every kind)

    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    heap.tune()
    child = _ChildPoller(Channel(reader, writer, accept_pickle=True))
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    # the server decides when probing stops: a Ctrl-C reaches the whole process group, and
    # the server then says "stop". SIGTERM (someone stopping this PID alone) stops cleanly too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, lambda: child.channel.reader.feed_eof())
    await child.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m netmon.poller", description="netmon's poller (started by `netmon run`)"
    )
    parser.add_argument("--fd", type=int, required=True, help="the channel's socket (inherited)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[poller]: %(message)s",
    )
    try:
        asyncio.run(_child_main(args.fd))
    except NetmonError as exc:
        print(f"netmon poller: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
