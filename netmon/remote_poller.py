"""``netmon poll``: a poller on another machine (a district poller, or a site agent inside a
site behind NAT) that takes its share of the devices from a ``netmon serve`` and sends results
back over the server's API (``netmon.api.routes.pollers``; the server's side: netmon.fleet).

Three loops on one event loop, around the same :class:`netmon.poller.Poller` that ``netmon run``
runs in its child process:

* heartbeat, every ``heartbeat_every`` seconds (the server says; 5): tells the server it is
  alive (its lease) and learns its share of the sites; when the share or the inventory changed
  (the ``digest``), fetches its assignment -- the inventory of its sites and the SNMP profiles,
  as the server validated them -- and re-assigns the poller (devices that stay keep their
  schedule). Until the first assignment nothing is probed.
* batches, every second: the results taken meanwhile go to the on-disk outbox (netmon.outbox)
  as one batch with an id.
* send: the outbox's oldest batches go to the server, in order, each deleted only when the
  server answered that it took it. A batch the server refuses as malformed (422) is dropped and
  counted; anything else (no answer, 5xx, 409 loading) waits and is sent again.

A server that cannot be reached (a WAN cut) changes nothing inside the site: the poller keeps
probing what it was assigned, the outbox keeps the results (bounded: NETMON_OUTBOX_MAX_MB,
NETMON_OUTBOX_MAX_AGE_HOURS), and they are replayed with their own timestamps when the server
answers again. The change of state is logged once each way, not every failed try.

Several servers on one database (netmon.judging): ``--server`` may name several URLs, comma
separated; the poller talks to one at a time and moves to the next when it cannot reach it
(no connection, no answer in time), so a dead server's pollers carry on with the others within
a heartbeat or two, their leases never running out. A batch whose answer was lost and that is
sent again to another server is still taken once (its id, in the shared database).

The token (scope ``poller``) names the poller: its name is the token's. Use ``https://`` for a
server across a WAN (TLS: a reverse proxy, or uvicorn's ``--ssl-*``; docs/scale.md); the
assignment carries the inventory's resolved SNMP secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from netmon import __version__, heap
from netmon.channel import encode_result
from netmon.config import EX_CONFIG, ValidatedConfig
from netmon.errors import ConfigError, ConfigProblem, NetmonError
from netmon.inventory import Inventory
from netmon.outbox import Outbox
from netmon.poller import Poller
from netmon.settings import Settings
from probes import Engines, ProbeResult
from probes.snmp_profiles import Profile

log = logging.getLogger("netmon.poll")
BATCH_EVERY = 1.0  # seconds between batches into the outbox
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between tries while the server does not answer
SEND_AT_ONCE = 20  # batches read from the outbox per round
GROUP = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # as the inventory's poller_group


class Refused(NetmonError):
    """The server refused the poller's token (401/403): a configuration error."""


def read_token(path: Path) -> str:
    """The token in ``path`` (its first word); a ConfigError that names the file otherwise."""
    try:
        lines = path.read_text().split()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ConfigError(
            [ConfigProblem(str(path), None, "--token-file", f"cannot read: {why}")]
        ) from exc
    if not lines:
        raise ConfigError(
            [ConfigProblem(str(path), None, "--token-file", "the file holds no token")]
        )
    token = lines[0]
    return token


class RemotePoller:
    def __init__(self, settings: Settings, server: str, token: str, group: str, outbox: Outbox,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.servers = [s.strip() for s in server.split(",") if s.strip()]
        self.server = self.servers[0]  # the one talked to now
        self.settings, self.group, self.outbox = settings, group, outbox
        self.clock = clock
        self.token = token
        self.client = self._client_for(self.server)
        self._closing: set[asyncio.Task[None]] = set()  # clients of servers left, closing
        self.started_at = clock()
        self.poller: Poller | None = None
        self.digest: str | None = None
        self.sites: list[str] = []
        self.heartbeat_every = 5.0
        self.batch: list[list[Any]] = []
        self.reachable: bool | None = None  # None: not tried yet
        self.refused = 0  # results in batches the server refused as malformed
        self._tasks: list[asyncio.Task[None]] = []
        self._answered = asyncio.Event()  # set when the server answers again after a cut

    def _client_for(self, server: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.rstrip("/"), timeout=15.0,
                                 headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip

    def _fail_over(self, failed: httpx.AsyncClient, exc: Exception) -> None:
        """The server behind ``failed`` cannot be reached: talk to the next of several."""
        if (
            len(self.servers) < 2
            or failed is not self.client
            or not isinstance(exc, httpx.TransportError)
        ):
            return
        self.server = self.servers[(self.servers.index(self.server) + 1) % len(self.servers)]
        self.client = self._client_for(self.server)
        task = asyncio.get_running_loop().create_task(failed.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        log.warning("trying the next server, %s", self.server)

    def _take(self, site: str, device: str, result: ProbeResult) -> None:
        self.batch.append(encode_result(site, device, result))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; then keep what was taken in the outbox and close."""
        client = self.client
        try:
            await self._beat_once()  # a refused token ends the run here (Refused)
        except httpx.HTTPError as exc:
            self._note(False, exc)
            self._fail_over(client, exc)
        loops = (
            (self._beat_once, lambda: self.heartbeat_every),
            (self._put_batch, lambda: BATCH_EVERY),
        )
        # += : the first heartbeat may have started the scheduler's task already (kept here)
        self._tasks += [asyncio.create_task(self._every(fn, every)) for fn, every in loops]
        self._tasks.append(asyncio.create_task(self._send_forever(), name="send"))
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.poller is not None:
            await self.poller.stop()
            await self.poller.engines.close()
        await self._put_batch()
        await self.client.aclose()
        await asyncio.to_thread(self.outbox.close)

    async def _every(self, fn: Callable[[], Awaitable[None]], every: Callable[[], float]) -> None:
        while True:
            await asyncio.sleep(every())
            client = self.client
            try:
                await fn()
            except httpx.HTTPError as exc:
                self._note(False, exc)
                self._fail_over(client, exc)
            except Refused as exc:
                log.error("%s", exc)
            except Exception:
                log.exception("poller loop failed; it goes on")

    def _note(self, reachable: bool, why: object = None) -> None:
        if reachable != self.reachable:
            if reachable:
                log.info("server %s answers: sending the outbox", self.server)
                self._answered.set()  # the sender stops backing off
            else:
                if isinstance(why, Exception) and not str(why):
                    why = type(why).__name__  # httpx's timeouts say nothing of themselves
                log.warning("server %s unreachable (%s): results wait in the outbox %s",
                            self.server, why, self.outbox.path)  # fmt: skip
        self.reachable = reachable

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code in (401, 403):
            detail = response.json().get("detail", "") if response.content else ""
            raise Refused(
                f"{self.server} refused this poller's token: {response.status_code} {detail}"
            )
        response.raise_for_status()
        self._note(True)
        return response

    async def _beat_once(self) -> None:
        waiting = await asyncio.to_thread(self.outbox.waiting)
        modes = self.poller.stats().modes if self.poller is not None else {}
        body = {"group": self.group, "version": __version__, "pid": os.getpid(),
                "started_at": self.started_at, "outbox": waiting, "dropped": self.outbox.dropped + self.refused,
                "modes": modes}  # fmt: skip
        data = self._check(await self.client.post("/api/v1/pollers/heartbeat", json=body)).json()
        self.heartbeat_every = float(data["heartbeat_every"])
        if data["digest"] != self.digest or data["sites"] != self.sites:
            assignment = self._check(await self.client.get("/api/v1/pollers/assignment")).json()
            await self._configure(assignment)
        for site, device in data.get("poll_now", []):  # a trap the server received (netmon.traps)
            if self.poller is not None:
                self.poller.poll_now(site, device)

    async def _configure(self, assignment: dict[str, Any]) -> None:
        inventory = Inventory.model_validate(assignment["inventory"])
        profiles = {k: Profile.model_validate(v) for k, v in assignment["snmp_profiles"].items()}
        config = ValidatedConfig(self.settings, inventory, profiles)
        if self.poller is None:
            self.poller = Poller(self._take, await Engines.open(config))
            self.poller.assign(inventory)
            self._tasks.append(asyncio.create_task(self.poller.run(), name="scheduler"))
        else:
            self.poller.engines.reconfigure(config)
            self.poller.assign(inventory)
        self.digest, self.sites = assignment["digest"], list(assignment["sites"])
        log.info(
            "assigned %d sites (%d probe jobs)", len(self.sites), len(self.poller.scheduler.jobs)
        )

    async def _put_batch(self) -> None:
        if self.batch:
            items, self.batch = self.batch, []
            await asyncio.to_thread(self.outbox.put, items, self.clock())

    async def _send_forever(self) -> None:
        tries = 0
        while True:
            sent = await self._send_round()
            if sent is None:  # the server did not take the oldest batch: wait, try again
                self._answered.clear()
                with contextlib.suppress(TimeoutError):  # or until a heartbeat gets through
                    await asyncio.wait_for(
                        self._answered.wait(), BACKOFF[min(tries, len(BACKOFF) - 1)]
                    )
                tries += 1
            else:
                tries = 0
                if sent == 0:
                    await asyncio.sleep(BATCH_EVERY)

    async def _send_round(self) -> int | None:
        """Send the oldest batches in order: how many were taken, None when one was not."""
        batches = await asyncio.to_thread(self.outbox.oldest, SEND_AT_ONCE)
        for seq, batch, items in batches:
            client = self.client
            try:
                response = await client.post("/api/v1/pollers/results",
                                             json={"batch": batch, "items": items})  # fmt: skip
            except httpx.HTTPError as exc:
                self._note(False, exc)
                self._fail_over(client, exc)
                return None
            if response.status_code == 422:  # malformed: sending it again cannot help
                log.error(
                    "server refused batch %s as malformed; dropped: %s", batch, response.text[:200]
                )
                self.refused += len(items)
            elif response.status_code != 200:
                self._note(False, f"HTTP {response.status_code}")
                return None
            self._note(True)
            await asyncio.to_thread(self.outbox.done, seq)
        return len(batches)


__all__ = ["RemotePoller", "read_token"]


def poll(settings: Settings, server: str, token_file: Path, group: str, outbox: Path | None) -> int:
    """``netmon poll``: run until SIGINT/SIGTERM; 0, or 78 when the server refuses the token."""
    token = read_token(token_file)
    if not GROUP.match(group):
        raise ConfigError(
            [
                ConfigProblem(
                    "command line", None, "--group", "a group is lower-case letters, digits and '-'"
                )
            ]
        )
    urls = [s.strip() for s in server.split(",")]
    if not all(u.startswith(("http://", "https://")) for u in urls):
        raise ConfigError([ConfigProblem("command line", None, "--server",
                                         "give http:// or https:// URLs, comma separated")])  # fmt: skip
    path = outbox or settings.data_dir / "outbox.db"
    box = Outbox(path, settings.outbox_max_mb << 20, settings.outbox_max_age_hours * 3600)
    log.info("netmon %s polling for %s (group %s); outbox %s (%d results waiting)",
             __version__, server, group, path, box.waiting())  # fmt: skip
    try:
        asyncio.run(_poll_until_stopped(RemotePoller(settings, server, token, group, box)))
    except Refused as exc:
        print(f"netmon poll: --token-file: {exc}", file=sys.stderr)
        return EX_CONFIG
    return 0


async def _poll_until_stopped(poller: RemotePoller) -> None:
    heap.tune()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await poller.run(stop)
