"""Remote pollers: the server's side of ``netmon serve`` + ``netmon poll`` (leases, shares, intake).

``netmon run`` probes in a child process of its own (``netmon.poller_link``). ``netmon serve``
probes nowhere: pollers on other machines (``netmon poll``, ``netmon.remote_poller``) take their
share of the devices from it and send results back over the API (``netmon.api.routes.pollers``),
as the child does over its socketpair -- the same results, encoded as ``netmon.channel`` rows.

Leases. A poller is a token with the scope ``poller``; its token's name is its name. It heart-
beats every ``heartbeat_every`` seconds (``POST /api/v1/pollers/heartbeat``; :data:`HEARTBEAT_EVERY`,
or a quarter of ``failover_delay`` if that is shorter: a lease outlives three late beats), which upserts its
row in ``poller_lease`` (name, group, heartbeat time) in the store: PostgreSQL when several
servers share one database, so every server sees every poller. A poller is *live* while its last
heartbeat is younger than ``failover_delay`` (``NETMON_FAILOVER_DELAY``, default 60 s).

Shares: rendezvous hashing. Every site belongs to one poller group (the inventory's
``poller_group``, default ``central``); within a group, site ``s`` goes to the live poller ``p``
with the highest ``blake2b(p, s)``. Every server computes the same owner from the same leases,
with no coordination; a poller that joins takes about 1/n of its group's sites (from every other
poller evenly), one that leaves gives each of its sites to the next-highest -- nobody else's
sites move. A poller that stops heart-beating keeps its sites until its lease runs out
(``failover_delay``); the others take them at their next heartbeat, so a site is without a
poller for at most ``failover_delay`` + ``heartbeat_every``.

No poller is not down. A site whose group has no live poller is judged ``unknown`` with the
reason ``no_poller`` (``netmon.verdict.rules.no_poller``), and its time counts as ``no_data``.

Intake. A batch of results carries an id; ``poller_batch`` (poller, batch) is its unique key, so
a batch re-sent after a lost reply (or replayed from a poller's outbox) is taken once. A result
is taken only for a device of the poller's group whose site is assigned to it now, or was taken
before the poller's share last changed (a replay, a hand-over); the rest are rejected and
counted (``netmon_poller_results_rejected_total``).

Cost: a heartbeat is one upsert and one read of the live leases (a few rows per poller); shares
are recomputed only when the set of live pollers changes: O(sites x pollers in the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select

from netmon.channel import ChannelError, decode_result
from netmon.poller import PollerStats, Sink
from probes.base import ProbeResult

if TYPE_CHECKING:
    from netmon.config import ValidatedConfig
    from netmon.inventory import Inventory
    from netmon.store import Store

log = logging.getLogger("netmon.fleet")
HEARTBEAT_EVERY = 5.0  # seconds between a poller's heartbeats (the server tells it)
BATCHES_KEPT = 7 * 86400.0  # seconds a batch id is remembered (an outbox keeps less: 24 h)
PRUNE_EVERY = 600.0  # seconds between prunings of the batch ids older than BATCHES_KEPT


class PollerLeaseRow(SQLModel, table=True):
    __tablename__ = "poller_lease"

    name: str = Field(primary_key=True, max_length=64)  # the poller's token name
    grp: str = Field(max_length=64, index=True)
    version: str = Field(max_length=32)
    pid: int
    started_at: float  # Unix seconds: the poller process's start
    heartbeat_at: float = Field(index=True)
    outbox: int = 0  # results waiting in its outbox at the heartbeat
    dropped: int = 0  # results its outbox dropped (full or too old), since it started


class PollerBatchRow(SQLModel, table=True):
    __tablename__ = "poller_batch"

    poller: str = Field(primary_key=True, max_length=64)
    batch: str = Field(primary_key=True, max_length=64)
    received_at: float = Field(index=True)
    results: int


@dataclass(frozen=True)
class Heartbeat:
    """What a poller says of itself in each heartbeat."""

    group: str
    version: str
    pid: int
    started_at: float
    outbox: int = 0
    dropped: int = 0
    modes: dict[str, str] = field(default_factory=dict)


def owner(site_id: str, pollers: Iterable[str]) -> str | None:
    """The poller that serves ``site_id`` among ``pollers`` (rendezvous hashing)."""
    best: tuple[bytes, str] | None = None
    for name in pollers:
        score = hashlib.blake2b(f"{name}\0{site_id}".encode(), digest_size=8).digest()
        if best is None or (score, name) > best:
            best = (score, name)
    return best[1] if best else None


def shares(inventory: Inventory, live: Mapping[str, str]) -> dict[str, str]:
    """Site id -> its poller, for ``live`` (poller -> group); sites of a group with no live
    poller are left out."""
    by_group: dict[str, list[str]] = {}
    for name, group in live.items():
        by_group.setdefault(group, []).append(name)
    found: dict[str, str] = {}
    for site in inventory.sites:
        chosen = owner(site.id, by_group.get(site.poller_group, ()))
        if chosen is not None:
            found[site.id] = chosen
    return found


@dataclass
class IntakeCounts:
    """The server's counters of remote results (exported as metrics)."""

    taken: int = 0
    rejected: int = 0
    duplicate_batches: int = 0
    heartbeats: int = 0


class Fleet:
    """The :class:`netmon.poller_link.PollerLink` of ``netmon serve``: remote pollers."""

    def __init__(self, sink: Sink, store: Store, failover_delay: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.sink, self.store, self.clock = sink, store, clock
        self.failover_delay = failover_delay
        self.heartbeat_every = min(HEARTBEAT_EVERY, failover_delay / 4)
        self.connected = False  # some poller is live
        self.restarts = 0
        self.counts = IntakeCounts()
        self.inventory: Inventory | None = None
        self.config: ValidatedConfig | None = None
        self.live: dict[str, str] = {}  # poller -> group
        self.owners: dict[str, str] = {}  # site id -> poller
        self.share_changed: dict[str, float] = {}  # poller -> when its share last changed
        self.modes: dict[str, dict[str, str]] = {}  # poller -> its engine modes
        self.heard: dict[str, float] = {}  # poller -> its last heartbeat seen
        self.urgent: dict[str, list[tuple[str, str]]] = {}  # poller -> devices to probe at once
        self.unwatched: dict[str, float] = {}  # site id -> since when no poller has served it
        self.on_change: Callable[[set[str]], None] = lambda sites: None  # sites to re-judge
        self.digest = ""
        self._sites_json: dict[str, Any] = {}  # site id -> its inventory entry as JSON
        self._rest_json: dict[str, Any] = {}  # the inventory but its sites, as JSON
        self._pruned = 0.0
        self._refreshing = asyncio.Lock()
        self.started_at = clock()
        self._task: asyncio.Task[None] | None = None

    # --- the PollerLink interface -------------------------------------------------------------
    async def open(self, config: ValidatedConfig | None) -> None:
        self.config = config

    async def start(self, inventory: Inventory) -> None:
        self._set_inventory(inventory)
        await self.refresh()
        self._task = asyncio.create_task(self._every(self.heartbeat_every), name="fleet")

    async def assign(self, inventory: Inventory, config: ValidatedConfig | None) -> None:
        if config is not None:
            self.config = config
        self._set_inventory(inventory)
        self._reshare(dict(self.live))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def poll_now(self, site_id: str, device: str) -> None:
        """Probe one device at once (a trap, netmon.traps): its poller is told in the answer to
        its next heartbeat (pollers call the server, never the other way: NAT)."""
        name = self.owners.get(site_id)
        if name is not None:
            self.urgent.setdefault(name, []).append((site_id, device))

    def take_urgent(self, name: str) -> list[tuple[str, str]]:
        return self.urgent.pop(name, [])

    def stats(self) -> PollerStats:
        modes: dict[str, str] = {}
        for m in self.modes.values():
            modes.update(m)
        return PollerStats(modes=modes)

    def unwatched_since(self, site_id: str) -> float | None:
        """Since when no live poller has served the site: none owns it, or it was taken from a
        poller that died and its new owner's results have not come yet."""
        if site_id not in self.owners:
            return self.unwatched.get(site_id, self.started_at)
        return self.unwatched.get(site_id)

    def covering(self) -> bool:
        """Every second the server runs is covered: a site no live poller serves is judged
        ``unknown`` (``no_poller``), which the timeline counts as no_data, site by site; a
        site whose poller was cut and replays its outbox has that time re-judged from the
        results (netmon.history): it was watched, only not heard."""
        return self._task is not None

    # --- leases and shares --------------------------------------------------------------------
    def _set_inventory(self, inventory: Inventory) -> None:
        """Dump the inventory once per load: the digest and every assignment read these."""
        self.inventory = inventory
        self._sites_json = {s.id: s.model_dump(mode="json") for s in inventory.sites}
        self._rest_json = inventory.model_dump(mode="json", exclude={"sites"})
        text = json.dumps(self._sites_json, sort_keys=True)
        self.digest = hashlib.sha256(text.encode()).hexdigest()[:16]

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.refresh()
            except Exception as exc:  # a dead database: keep the shares we know
                log.warning("poller leases not read: %s", exc)

    async def refresh(self) -> None:
        """Read the live leases; reshare when the set of live pollers changed. One at a time:
        a read that began before a heartbeat's write must not land after the heartbeat's own
        refresh (the new poller would be "live" and "lost" in the same instant)."""
        async with self._refreshing:
            rows = await asyncio.to_thread(self._read_live, self.clock())
            self.heard.update({name: at for name, (_group, at) in rows.items()})
            live = {name: group for name, (group, _at) in rows.items()}
            if live != self.live or not self.owners:
                self._reshare(live)

    def _read_live(self, now: float) -> dict[str, tuple[str, float]]:
        """Poller -> (group, last heartbeat), for the leases that have not run out."""
        with self.store.session("reading", "poller leases") as s:
            rows = s.exec(select(PollerLeaseRow).where(
                col(PollerLeaseRow.heartbeat_at) > now - self.failover_delay)).all()  # fmt: skip
            return {r.name: (r.grp, r.heartbeat_at) for r in rows}

    def _reshare(self, live: dict[str, str]) -> None:
        if self.inventory is None:
            return
        before, after = self.owners, shares(self.inventory, live)
        now = self.clock()
        moved = {s for s in set(before) | set(after) if before.get(s) != after.get(s)}
        for site in moved:
            for name in (before.get(site), after.get(site)):
                if name is not None:
                    self.share_changed[name] = now
        self._log_leases(live)
        unwatched = set(self.unwatched)
        for site in moved:  # a poller that lost its lease last served it at its last heartbeat
            gone = before.get(site)
            if gone is not None and gone not in live:
                self.unwatched.setdefault(site, self.heard.get(gone, now))
        every = {site.id for site in self.inventory.sites}
        for site in every - set(after):
            self.unwatched.setdefault(site, now)  # no live poller in its group at all
        self.unwatched = {k: v for k, v in self.unwatched.items() if k in every}
        self.live, self.owners, self.connected = live, after, bool(live)
        changed = moved | (set(self.unwatched) ^ unwatched)
        if changed:
            self.on_change(changed)

    def _log_leases(self, live: dict[str, str]) -> None:
        for name in sorted(set(live) - set(self.live)):
            log.info("poller %s (group %s) is live", name, live[name])
        for name in sorted(set(self.live) - set(live)):
            log.warning("poller %s lost its lease: its sites go to its group's others", name)

    def share_of(self, name: str) -> list[str]:
        return sorted(s for s, p in self.owners.items() if p == name)

    async def heartbeat(self, name: str, beat: Heartbeat) -> list[str]:
        """Record a poller's heartbeat; its share of the sites now."""
        now = self.clock()
        await asyncio.to_thread(self._write_lease, name, beat, now)
        self.counts.heartbeats += 1
        self.modes[name] = beat.modes
        if self.live.get(name) != beat.group:
            await self.refresh()
        return self.share_of(name)

    def _write_lease(self, name: str, beat: Heartbeat, now: float) -> None:
        with self.store.session("writing", "poller lease") as s:
            row = s.get(PollerLeaseRow, name) or PollerLeaseRow(
                name=name, grp=beat.group, version=beat.version, pid=beat.pid,
                started_at=beat.started_at, heartbeat_at=now,
            )  # fmt: skip
            row.grp, row.version, row.pid = beat.group, beat.version, beat.pid
            row.started_at, row.heartbeat_at = beat.started_at, now
            row.outbox, row.dropped = beat.outbox, beat.dropped
            s.add(row)
            s.commit()

    def leases(self) -> list[PollerLeaseRow]:
        with self.store.session("reading", "poller leases") as s:
            return list(s.exec(select(PollerLeaseRow).order_by(col(PollerLeaseRow.name))).all())

    def assignment(self, name: str) -> dict[str, Any]:
        """What a poller probes: the inventory of its share, the SNMP profiles, the digest."""
        mine = self.share_of(name)
        wanted = set(mine)
        inv = {**self._rest_json,
               "sites": [j for site, j in self._sites_json.items() if site in wanted]}  # fmt: skip
        profiles = self.config.snmp_profiles if self.config is not None else {}
        return {"digest": self.digest, "sites": mine, "inventory": inv,
                "snmp_profiles": {k: p.model_dump(mode="json") for k, p in profiles.items()}}  # fmt: skip

    # --- intake ---------------------------------------------------------------------------------
    async def take(self, name: str, batch: str, rows: list[Any]) -> tuple[int, int, bool]:
        """Take one batch of a poller's results: (taken, rejected, duplicate batch)."""
        decoded: list[tuple[str, str, ProbeResult] | None] = []
        for row in rows:
            try:
                decoded.append(decode_result(row))
            except ChannelError:
                decoded.append(None)
        first = await asyncio.to_thread(self._claim, name, batch, len(rows), self.clock())
        if not first:
            self.counts.duplicate_batches += 1
            return 0, 0, True
        taken, back = 0, set()
        for item in decoded:
            if item is not None and self._allowed(name, *item[:2], item[2].started_at):
                self.sink(*item)
                taken += 1
                if item[0] in self.unwatched and self.owners.get(item[0]) == name:
                    back.add(item[0])  # its new owner's first result: served again
        self.served(back)  # judged once for the batch, not once per site
        self.counts.taken += taken
        self.counts.rejected += len(rows) - taken
        return taken, len(rows) - taken, False

    def served(self, sites: set[str]) -> None:
        """These unwatched sites' new owners were heard from (here, or by another server:
        netmon.judging): served again, re-judged once."""
        sites = {s for s in sites if s in self.unwatched}
        for site in sites:
            del self.unwatched[site]
        if sites:
            self.on_change(sites)

    def _claim(self, name: str, batch: str, results: int, now: float) -> bool:
        """Remember the batch id; False when it was taken before (the insert adds no row)."""
        table = PollerBatchRow.__table__  # type: ignore[attr-defined]
        insert = pg_insert if self.store.engine.dialect.name == "postgresql" else sqlite_insert
        claim = insert(table).values(poller=name, batch=batch, received_at=now, results=results)
        with self.store.session("writing", "poller batch") as s:
            added = s.connection().execute(
                claim.on_conflict_do_nothing().returning(table.c.batch)).first() is not None  # fmt: skip
            if now - self._pruned > PRUNE_EVERY:
                s.connection().execute(table.delete().where(
                    table.c.received_at < now - BATCHES_KEPT))  # fmt: skip
                self._pruned = now
            s.commit()
        return added

    def _allowed(self, name: str, site_id: str, device: str, started_at: float) -> bool:
        site = self.inventory.site(site_id) if self.inventory is not None else None
        if site is None or site.device(device) is None:
            return False
        if site.poller_group != self.live.get(name, site.poller_group + "\0"):
            return False
        return self.owners.get(site_id) == name or started_at < self.share_changed.get(name, 0.0)


__all__ = ["Fleet", "Heartbeat", "IntakeCounts", "owner", "shares"]
