"""The server's side of probing: where results come from. One interface, two links.

* :class:`PollerProcess` (``netmon run``'s default): starts the poller as a child process
  (``python -m netmon.poller``), hands it the validated configuration over the results channel
  (``netmon.channel``), and hands every result it sends to the sink (``Monitor.record``). The
  child's event loop does nothing but probe, so a stalled server delays results, never echoes.
  If the child dies, the link says so (``connected`` false, ``netmon_poller_up`` 0), logs it and
  starts a new one after a back-off; devices simply get no new results meanwhile -- no data,
  never an outage.
* :class:`LocalPoller`: the same :class:`netmon.poller.Poller` on the server's own loop
  (``--poller inline``; unit tests that hand the monitor their own engines).

Both: ``open(config)`` (engines ready; a failure to open them ends the run), ``start()``
(probe; results flow), ``assign(config)`` (a reload), ``poll_now(site, device)`` (probe one
device at once, off schedule: a trap's hint), ``stop()`` (every result taken is delivered before
it returns), ``stats()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from netmon import __version__
from netmon.channel import Channel, ChannelError, decode_result
from netmon.errors import NetmonError
from netmon.poller import Poller, PollerStats, Sink
from probes import Engines, ProbeResult

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.inventory import Inventory

log = logging.getLogger("netmon.poller")

RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before restarting a dead poller
STOP_TIMEOUT = 15.0  # seconds a poller gets to send what it has and exit
SILENT_LIMIT = 30.0  # seconds without a message (it sends stats every second): the poller is hung


class PollerError(NetmonError):
    """The poller could not start (e.g. no ICMP socket): the run cannot probe."""


class PollerLink(Protocol):
    connected: bool
    restarts: int

    async def open(self, config: ValidatedConfig | None) -> None: ...

    async def start(self, inventory: Inventory) -> None: ...

    async def assign(self, inventory: Inventory, config: ValidatedConfig | None) -> None: ...

    async def poll_now(self, site_id: str, device: str) -> None: ...

    async def stop(self) -> None: ...

    def stats(self) -> PollerStats: ...

    def unwatched_since(self, site_id: str) -> float | None:
        """Since when no poller has served the site; None: one serves it (the server's own
        poller serves every site)."""
        ...

    def covering(self) -> bool:
        """Whether now counts as covered time (netmon.rollup's coverage): here, while the
        poller is connected (without it every site is no_data)."""
        ...


class LocalPoller:
    """The poller on the server's own event loop."""

    def __init__(self, sink: Sink, engines: Engines | None = None) -> None:
        self.poller = Poller(sink, engines)
        self.connected = True
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    async def open(self, config: ValidatedConfig | None) -> None:
        if config is not None and not self.poller.engines.names():
            self.poller.engines = await Engines.open(config)

    async def start(self, inventory: Inventory) -> None:
        self.poller.assign(inventory)
        self._task = asyncio.create_task(self.poller.run(), name="scheduler")

    async def assign(self, inventory: Inventory, config: ValidatedConfig | None) -> None:
        if config is not None:
            self.poller.engines.reconfigure(config)
        self.poller.assign(inventory)

    async def poll_now(self, site_id: str, device: str) -> None:
        self.poller.poll_now(site_id, device)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.poller.stop()
        await self.poller.engines.close()

    def stats(self) -> PollerStats:
        return self.poller.stats()

    def unwatched_since(self, site_id: str) -> float | None:
        return None

    def covering(self) -> bool:
        return self.connected


class PollerProcess:
    """A poller in a child process, over a socketpair."""

    def __init__(self, sink: Sink, log_level: str = "info") -> None:
        self.sink = sink
        self.log_level = log_level
        self.connected = False
        self.restarts = 0
        self.results = 0  # results received from pollers in all
        self.delivered = 0  # results the pollers said they sent, at their "bye"
        self.command = [sys.executable, "-m", "netmon.poller"]  # the child, before its flags
        self._stats = PollerStats()
        self._config: ValidatedConfig | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._taking = False  # set by start(): results flow to the sink (held until then)
        self._held: list[tuple[str, str, ProbeResult]] = []  # taken while the server loads
        self._stopping = False
        self._last_message = time.monotonic()
        self.silent_limit = SILENT_LIMIT
        self.watch_every = 5.0

    async def open(self, config: ValidatedConfig | None) -> None:
        if config is None:
            raise PollerError("a poller process needs the validated configuration")
        self._config = config
        await self._spawn()

    async def _spawn(self) -> None:
        """Start the child, send it the configuration, wait for its hello."""
        parent, child = socket.socketpair()
        cmd = [*self.command, "--fd", str(child.fileno()), "--log-level", self.log_level]
        try:
            self._proc = await asyncio.create_subprocess_exec(*cmd, pass_fds=(child.fileno(),))
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent)
        self._channel = Channel(reader, writer, accept_pickle=False)
        await self._channel.send({"type": "config", "config": self._config}, pickled=True)
        hello = await self._channel.receive()
        if hello is None or hello.get("type") != "hello":
            await self._reap()
            raise PollerError("the poller process exited before it started probing")
        if hello.get("error"):
            await self._reap()
            raise PollerError(str(hello["error"]))
        if hello.get("version") != __version__:
            await self._reap()
            raise PollerError(f"poller runs netmon {hello.get('version')}, server {__version__}")
        self._stats = dataclasses.replace(self._stats, modes=dict(hello.get("modes") or {}),
                                          pid=int(hello.get("pid") or 0))  # fmt: skip
        self.connected = True
        log.info("poller process %s started", self._proc.pid if self._proc else "?")
        self._reader = asyncio.create_task(self._read(self._channel), name="poller-results")

    async def start(self, inventory: Inventory) -> None:
        """Results flow to the sink from now on, beginning with those the poller took while
        the server was loading its history (it probes from ``open``: no gap at a restart)."""
        self._release_held()
        self._keeper = asyncio.create_task(self._keep_alive(), name="poller-keeper")
        self._watch = asyncio.create_task(self._watchdog(), name="poller-watchdog")

    def _release_held(self) -> None:
        """From now on results go to the sink, beginning with those held so far, in order."""
        self._taking = True
        held, self._held = self._held, []
        for site, device, result in held:
            self.sink(site, device, result)

    async def _watchdog(self) -> None:
        """Stop a poller that is alive but silent (hung) for SILENT_LIMIT seconds; the keeper
        then starts a new one. Silence is counted only while this loop itself is awake: after
        a server stall (this sleep waking late) the clock starts again, so a busy server never
        kills a working poller."""
        every = self.watch_every
        while not self._stopping:
            before = time.monotonic()
            await asyncio.sleep(every)
            now = time.monotonic()
            if now - before > every + 1.0 or not self.connected:
                self._last_message = now  # we were stalled, or it is being restarted
            elif now - self._last_message > self.silent_limit and self._proc is not None:
                log.error("poller %d sent nothing for %.0f s: stopping it", self._proc.pid,
                          now - self._last_message)  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                self._last_message = now

    async def _read(self, channel: Channel) -> None:
        """Take every message until the channel closes (the child exited or said bye)."""
        try:
            while (message := await channel.receive()) is not None:
                if self._handle(message):
                    break
                await asyncio.sleep(0)  # a backlog of batches must not starve the server
        except ChannelError as exc:
            log.error("poller sent an unreadable message (%s): restarting it", exc)
        finally:
            self.connected = False

    def _handle(self, message: dict[str, Any]) -> bool:
        self._last_message = time.monotonic()
        kind = message["type"]
        if kind == "results":
            for row in message.get("items", ()):
                site, device, result = decode_result(row)
                self.results += 1
                if self._taking:
                    self.sink(site, device, result)
                else:
                    self._held.append((site, device, result))
        elif kind == "stats":
            self._stats = PollerStats.from_json(message)
        elif kind == "bye":
            self.delivered += int(message.get("results", 0))
            return True
        return False

    async def _keep_alive(self) -> None:
        """Restart a poller that died (back-off doubling up to 30 s); never while stopping."""
        failures = 0
        while not self._stopping:
            up_since = time.monotonic()
            if self._reader is not None:
                await asyncio.shield(self._reader)
            if self._stopping:
                return
            failures = 1 if time.monotonic() - up_since > 60 else failures + 1  # a while up: 1
            code = await self._reap()
            log.error("the poller process exited (status %s); no results meanwhile", code)
            await asyncio.sleep(RESTART_BACKOFF[min(failures - 1, len(RESTART_BACKOFF) - 1)])
            try:
                await self._spawn()
                self.restarts += 1
            except (NetmonError, OSError) as exc:  # PollerError, ChannelError, ...
                log.error("restarting the poller failed: %s", exc)
                self._reader = None

    async def assign(self, inventory: Inventory, config: ValidatedConfig | None) -> None:
        base = config if config is not None else self._config
        if base is None:
            return
        self._config = dataclasses.replace(base, inventory=inventory)
        if self._channel is not None and self.connected:
            with contextlib.suppress(ConnectionError, OSError):
                await self._channel.send({"type": "config", "config": self._config}, pickled=True)

    async def poll_now(self, site_id: str, device: str) -> None:
        if self._channel is not None and self.connected:  # else: no poller, nothing to hint
            with contextlib.suppress(ConnectionError, OSError):
                await self._channel.send({"type": "poll_now", "site": site_id, "device": device})

    async def stop(self) -> None:
        """Tell the poller to stop; take what it still sends; reap it (killed if it hangs)."""
        self._stopping = True
        for task in (self._keeper, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._channel is not None and self.connected:
            with contextlib.suppress(ConnectionError, OSError):
                await self._channel.send({"type": "stop"})
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), STOP_TIMEOUT)
        await self._reap()
        self._release_held()  # stopped while loading: what was probed is still stored

    async def _reap(self) -> int | None:
        """Wait for the child to exit (TERM, then KILL if it does not); close the channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.error("poller %d did not exit: terminating it", proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            return await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return await proc.wait()

    def stats(self) -> PollerStats:
        return self._stats

    def unwatched_since(self, site_id: str) -> float | None:
        return None

    def covering(self) -> bool:
        return self.connected

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


def poller_for(mode: str, sink: Sink, log_level: str = "info") -> PollerLink:
    """The link ``netmon run`` uses: ``process`` (default) or ``inline``."""
    if mode == "inline":
        return LocalPoller(sink)
    return PollerProcess(sink, log_level)


__all__ = ["LocalPoller", "PollerError", "PollerLink", "PollerProcess", "poller_for"]
