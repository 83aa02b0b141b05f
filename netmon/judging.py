"""Two servers, one database: which ``netmon serve`` writes the verdict history (a lease).

Several ``netmon serve`` may share one PostgreSQL (behind a load balancer or DNS); pollers talk
to any of them. Every server takes results from the pollers that call it, stores them, folds
them, and judges every site, so every server's API answers with the current verdicts. But one
server at a time, the *leader*, writes the verdict history and does the store's chores (daily
rollups, compaction, pruning); the others are *followers*. The lease is one row of
``judge_lease`` (holder, epoch, expiry), taken and renewed with a conditional UPDATE (or the
first INSERT ... ON CONFLICT DO NOTHING), on the database's own clock. It lasts
``failover_delay`` (``NETMON_FAILOVER_DELAY``, the pollers' own) and is renewed every
``heartbeat_every`` (a quarter of it, at most 5 s): a dead leader's lease runs out and a
follower takes it within ``failover_delay`` + ``heartbeat_every``. With one server (SQLite
too) it is simply always the leader.

Results another server took. Each server tails ``probe_result`` by its id (a cursor, plus the
ids below it not yet visible: two servers' transactions commit out of id order; such a gap is
awaited for :data:`GAP_WAIT`) and folds every row it did not take itself (the keys of its own
results are kept until its tail sees them). At start the rows the refill already folded are
skipped by their start (``Monitor.folded_until``). A result for a site handed over to a new
poller tells the fleet the site is served again (``Fleet.served``), as a result taken directly
does. Each server also keeps a presence row (``s:`` + its name) in ``judge_lease``, renewed
with the lease: a server alone on its database (the usual ``netmon serve``, and SQLite) tails
nothing. Cost: each server reads every other server's rows once more (a primary-key range), at
most :data:`TAIL_CHUNKS` x :data:`TAIL_ROWS` a round (the rest the next), folded a chunk at a
time with the event loop running between.

Fenced writes. The leader's verdict changes are written by this module, not the store's queue:
each transaction first locks the lease row (``FOR SHARE``) where it is still its own, epoch and
all, and unexpired; a takeover's UPDATE waits for that lock, so a change is either committed
before the new leader reads the history, or never. A leader that finds its lease gone (a long
stall, a cut from the database) steps down at once: its unwritten changes become a follower's.
Chores check the lease locally (monotonic clock) before each run: rollups, compaction, pruning,
and re-judging late results (``netmon.history``; results tailed from the store are noted too,
and the leader writes its own changes before a stretch is rewritten; the rewrite is fenced too:
``Store.rewrite_history`` calls :meth:`Judging.fence` in its transaction). A server stalled
inside one of these transactions (SIGSTOP, a VM paused) loses its session after the store's
lock timeout (``idle_in_transaction_session_timeout``), so it cannot hold a takeover back. The
leader's unwritten changes are read with the store's queue (``Store.queued_elsewhere``: the
API's history shows them), but not journaled: a leader killed within the second before a write
loses them -- the follower's shadow has them (two servers); alone, a restart judges the change
again, at its restart's time.

Takeover: nothing lost, nothing doubled. A follower keeps the changes it judged but did not
write (its *shadow*, at most :data:`SHADOW_KEPT` changes: a count, like the store's backlog, so
a database outage of any length loses nothing; the leader that steps down in one keeps its
changes there too). What a live leader wrote is dropped from it: the leader moves its lease
row's ``renewed_at`` on only at a *clean* renewal (its write since the renewal before wrote all
it had judged), and the follower notes, by its own clock, when it read each value; once a value
is read that followed two clean renewals, every change the leader judged before the follower's
last read of the value before them is written (the leader's write after the earlier renewal
took all it had judged, and that renewal came after that read), so the shadow keeps only its
changes judged after that read less :data:`MATCH_WITHIN` (a few renewals' worth). This is also
why a takeover does not write back what the old leader's re-judge (netmon.history) removed:
that stretch was judged, written and rewritten by a live leader long before it died. Limit: a
leader that re-judged a stretch and died before its next two clean renewals
(~``heartbeat_every`` x 2) can still have that stretch's last live changes written back. On
taking the lease it catches up with the results, judges, reads the stored history since its
oldest shadow change, and aligns the two per site: each stored change matches the shadow change
of the same verdict nearest in time within :data:`MATCH_WITHIN` (the two servers judge the same
results a few seconds apart); the shadow changes after the last match (or, with none, after the
last stored change) are what the history lacks and are written first, each only if it differs
from the verdict before it; if the history still ends on a verdict other than the leader's
judgement now, that one is written too. Limit: two changes of one site closer together than
``MATCH_WITHIN`` in the takeover window can be aligned wrongly (verdicts change on the scale of
probe intervals, not seconds).

No poller is not down, and a dead server is not a site down: the pollers that called the dead
server lose their leases after ``failover_delay`` and their sites are ``unknown`` /
``no_poller`` until their group's other pollers (calling a live server) take them; a poller
given every server's URL (``netmon poll --server A,B``, netmon.remote_poller) moves on at once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import case, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

from netmon.errors import StoreError
from netmon.store import ProbeResultRow, VerdictChange, VerdictChangeRow
from probes import ProbeResult

if TYPE_CHECKING:
    from netmon.fleet import Fleet
    from netmon.monitor import Monitor, SiteStatus
    from netmon.store import Store

log = logging.getLogger("netmon.judging")
LEASE = "judge"  # the one lease row's name
TAIL_EVERY = 1.0  # seconds between reads of the results other servers stored
TAIL_ROWS = 1_000  # results read and folded at once (the event loop runs between chunks)
TAIL_CHUNKS = 20  # chunks a round reads at most: the rest is read next round
GAP_WAIT = 30.0  # seconds an id below the cursor is awaited (past the store's write deadline)
GAPS_KEPT = 10_000  # ids awaited at most (the oldest are given up first)
MINE_KEPT = 60.0  # seconds a result this server took (and wrote) is kept for its tail to skip
PRESENCE_KEPT = 86400.0  # seconds a dead server's presence row is kept
MATCH_WITHIN = 15.0  # seconds: two servers' judgements of one change are this close
SHADOW_KEPT = 100_000  # a follower's changes judged and not written, at most (a count)
UNWRITTEN_KEPT = 100_000  # a leader's changes waiting for the database, at most

ResultKey = tuple[str, str, str, float]  # (site, device, kind, started_at)


class JudgeLeaseRow(SQLModel, table=True):
    __tablename__ = "judge_lease"

    name: str = Field(primary_key=True, max_length=160)  # the lease, or "s:" + a server's name
    holder: str = Field(max_length=128)  # the leading server: host, pid, a random part
    epoch: int  # +1 at every change of holder: a fenced write names the epoch it holds
    expires_at: float  # the database's clock, Unix seconds
    renewed_at: float


def server_name() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Judging:
    """The judging lease of one ``netmon serve``, its tail of other servers' results, and the
    verdict changes it writes as leader (``Monitor.judging``)."""

    def __init__(self, monitor: Monitor, store: Store, fleet: Fleet | None, ttl: float,
                 renew_every: float | None = None, name: str | None = None) -> None:  # fmt: skip
        self.monitor, self.store, self.fleet, self.ttl = monitor, store, fleet, ttl
        self.renew_every = renew_every if renew_every is not None else min(5.0, ttl / 4)
        self.name = name or server_name()
        self.leader = False
        self.epoch = 0
        self.holder: str | None = None  # who leads, as last read
        self.valid_until = -math.inf  # monotonic: our lease surely holds until then
        self.unwritten: list[VerdictChange] = []  # the leader's changes not yet written
        self.shadow: list[VerdictChange] = []  # a follower's changes, judged and not written
        self.takeovers = 0
        self.tailed = 0  # results other servers took, folded here
        self.cursor = -1  # the highest result id read (-1: the tail has not started)
        self.boot_cut = 0  # rows at or below it may be in the refill: skipped if folded
        self.gaps: dict[int, float] = {}  # result ids below the cursor not seen yet -> since
        self.mine: dict[ResultKey, float] = {}  # results this server took -> when
        self.peers = -1  # other live servers on the database (-1: not read yet)
        self._tops: list[int] = []  # alone: the highest result id at the last renewals
        self._failing: set[str] = set()  # the parts of a round failing now (logged once)
        store.queued_elsewhere = self._queued  # the API's history shows them, as queued rows
        store.fence = self.fence  # a rewritten history (netmon.history) is the leader's alone
        self._renewed = -math.inf
        self._clean = False  # the leader's latest write point left nothing unwritten
        self._seen: tuple[str, int, float] | None = None  # another holder's lease, last read
        self._seen_at = -math.inf  # when (the monitor's clock) it was last read so
        self._seen_before = -math.inf  # when the value before it was last read
        monitor.listeners.append(self.taken)
        monitor.note_change = self.add_verdict_change  # the monitor's changes come here

    # --- what the monitor calls -------------------------------------------------------------
    def leading(self) -> bool:
        """Whether this server leads now (the lease surely holds: chores may run)."""
        return self.leader and time.monotonic() < self.valid_until

    def add_verdict_change(self, change: VerdictChange) -> None:
        """A change the monitor judged: written by the leader, kept by a follower (and by a
        leader whose lease may have run out: reconciled when renewed)."""
        if self.leading():
            self.unwritten.append(change)
            del self.unwritten[:-UNWRITTEN_KEPT]
        else:
            self.shadow.append(change)
            del self.shadow[:-SHADOW_KEPT]

    def _queued(self) -> list[tuple[str, dict[str, Any]]]:
        """The leader's unwritten changes as the store's queued rows (each leaves only after
        its commit, as the store's own: the store's readers read the queue first)."""
        return [(VerdictChangeRow.__tablename__, _row(c)) for c in list(self.unwritten)]

    def taken(self, site_id: str, device: str, result: ProbeResult) -> None:
        """A result this server took (a monitor listener): its tail skips it."""
        self.mine[(site_id, device, result.kind, result.started_at)] = time.monotonic()

    @property
    def role(self) -> Literal["leader", "follower"]:
        return "leader" if self.leading() else "follower"

    # --- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Tail, renew, write; every TAIL_EVERY seconds until cancelled. Anything but a
        cancel is logged and the next round runs (a bug must not end the task silently)."""
        while True:
            try:
                await self.step()
                if self.leader and not self.leading():
                    self._step_down("its lease ran out unrenewed")
            except Exception:
                log.exception("judging: a round failed; tried again in %.0f s", TAIL_EVERY)
            await asyncio.sleep(TAIL_EVERY)

    async def step(self) -> None:
        """One round: read the others' results, renew the lease when due, write. A part that
        fails (the database) is logged once and tried again next round; the others still run."""
        self._forget_mine()
        await self._try("reading the other servers' results", self._tail_round)
        if time.monotonic() - self._renewed >= self.renew_every:
            await self._try("renewing the judging lease", self.renew)
        if self.leader:
            wrote = not self.unwritten or await self._try("writing verdict changes", self.write)
            self._clean = wrote and self.leader

    async def _try(self, what: str, part: Callable[[], Awaitable[object]]) -> bool:
        try:
            await part()
        except StoreError as exc:
            if what not in self._failing:
                log.warning("judging: %s: %s; tried again every %.0f s", what, exc, TAIL_EVERY)
            self._failing.add(what)
            return False
        except Exception:  # a bug: said once, with its traceback; the other parts still run
            if what not in self._failing:
                log.exception("judging: %s failed; tried again every %.0f s", what, TAIL_EVERY)
            self._failing.add(what)
            return False
        if what in self._failing:
            self._failing.discard(what)
            log.info("judging: %s works again", what)
        return True

    async def _tail_round(self) -> None:
        if self.peers != 0:
            await self.tail()
        elif self.cursor >= 0:  # the last peer is gone: a last read, then none while alone
            await self.tail(catch_up=True)
            self.cursor, self.gaps = -1, {}

    async def renew(self) -> None:
        began, judged = time.monotonic(), self.monitor.clock()
        clean = self.leader and self._clean and not self.shadow
        epoch, seen, self.peers = await asyncio.to_thread(self._claim, clean)
        self._renewed = began
        self.holder = holder = seen[0] if seen is not None else self.name
        if epoch is None:
            if self.leader:
                self._step_down(f"{holder} holds the lease")
            if seen is not None:
                self._observe(judged, seen)
            return
        self.valid_until = began + self.ttl
        fresh = not self.leader or epoch != self.epoch
        if fresh or self.shadow:
            self.epoch = epoch
            await self.take_over(fresh)

    def _observe(self, judged: float, seen: tuple[str, int, float]) -> None:
        """Another server's lease as read at ``judged``: past its second clean renewal since,
        the shadow keeps only what may still be lacking (see the module's docstring)."""
        if self._seen is None or seen[:2] != self._seen[:2]:
            self._seen_before = -math.inf
        elif seen[2] != self._seen[2]:
            written = self._seen_before - MATCH_WITHIN  # the leader judged all before, wrote it
            if self.shadow and (self.shadow[0].at or 0.0) < written:
                self.shadow = [c for c in self.shadow if (c.at or 0.0) >= written]
            self._seen_before = self._seen_at
        self._seen, self._seen_at = seen, judged

    def _step_down(self, why: str) -> None:
        log.warning("judging: no longer the leader (%s): verdict changes not written here", why)
        self.leader = False
        self.shadow.extend(self.unwritten)
        del self.shadow[:-SHADOW_KEPT]
        self.unwritten = []

    async def stop(self) -> None:
        """Write what is unwritten (a clean stop), then let the lease go at once (a failure
        is logged: the monitor's stop goes on to its snapshot and final flush)."""
        if self.leader and self.unwritten:
            await self._try("writing verdict changes", self.write)
        if self.leader:
            await self._try("letting the judging lease go",
                            functools.partial(asyncio.to_thread, self._release))  # fmt: skip
            self.leader = False

    # --- the lease --------------------------------------------------------------------------
    def _now(self) -> Any:
        """The database's clock (PostgreSQL: two servers' clocks never meet), as Unix seconds."""
        if self.store.engine.dialect.name == "postgresql":
            return func.extract("epoch", func.clock_timestamp())
        return literal(time.time())

    def _claim(self, clean: bool) -> tuple[int | None, tuple[str, int, float] | None, int]:
        """Take or renew the lease: (its epoch, None) if ours now, else (None, its holder,
        epoch and renewal); and note this server's presence: the number of other live servers
        comes third. ``clean``: the leader wrote all it judged before its last renewal; only
        then is its ``renewed_at`` moved on (a follower trims its shadow by it)."""
        t = JudgeLeaseRow.__table__  # type: ignore[attr-defined]
        now, ours = self._now(), t.c.holder == self.name
        epoch = case((ours, t.c.epoch), else_=t.c.epoch + 1)
        renewed = now if clean else case((ours, t.c.renewed_at), else_=now)
        renew = (t.update().where(t.c.name == LEASE, ours | (t.c.expires_at < now))
                 .values(holder=self.name, epoch=epoch, expires_at=now + self.ttl,
                         renewed_at=renewed).returning(t.c.epoch))  # fmt: skip
        insert = pg_insert if self.store.engine.dialect.name == "postgresql" else sqlite_insert
        first = insert(t).values(name=LEASE, holder=self.name, epoch=1,
                                 expires_at=now + self.ttl, renewed_at=now)  # fmt: skip
        with self.store.session("writing", "the judging lease") as s:
            conn = self._bounded(s.connection())
            got = conn.execute(renew).first()
            if got is None:
                got = conn.execute(first.on_conflict_do_nothing().returning(t.c.epoch)).first()
            seen = None
            if got is None:
                lease = select(t.c.holder, t.c.epoch, t.c.renewed_at).where(t.c.name == LEASE)
                row = conn.execute(lease).first()
                seen = (str(row[0]), int(row[1]), float(row[2])) if row is not None else None
            peers = self._present(conn, now)
            s.commit()
        return (int(got[0]) if got is not None else None), seen, peers

    def _present(self, conn: Any, now: Any) -> int:
        """Upsert this server's presence row; the others' that are live (a server alone on
        its database reads no results back)."""
        t = JudgeLeaseRow.__table__  # type: ignore[attr-defined]
        me = f"s:{self.name}"
        insert = pg_insert if self.store.engine.dialect.name == "postgresql" else sqlite_insert
        row = insert(t).values(name=me, holder=self.name, epoch=0, expires_at=now + self.ttl,
                               renewed_at=now)  # fmt: skip
        conn.execute(row.on_conflict_do_update(index_elements=[t.c.name], set_={
            "expires_at": now + self.ttl, "renewed_at": now}))  # fmt: skip
        servers = t.c.name.like("s:%")
        conn.execute(t.delete().where(servers, t.c.expires_at < now - PRESENCE_KEPT))
        others = select(func.count()).where(servers, t.c.name != me, t.c.expires_at > now)
        if self.cursor < 0:  # alone: where a tail would start if a peer came (its first rows)
            r = ProbeResultRow.__table__  # type: ignore[attr-defined]
            self._tops.append(int(conn.execute(select(func.max(r.c.id))).scalar() or 0))
            del self._tops[:-3]
        return int(conn.execute(others).scalar() or 0)

    def _release(self) -> None:
        t = JudgeLeaseRow.__table__  # type: ignore[attr-defined]
        with self.store.session("writing", "the judging lease") as s:
            s.connection().execute(t.update().where(
                t.c.name == LEASE, t.c.holder == self.name).values(expires_at=0.0))  # fmt: skip
            s.connection().execute(t.delete().where(t.c.name == f"s:{self.name}"))
            s.commit()

    def _bounded(self, conn: Any) -> Any:
        """PostgreSQL: a server stalled inside this transaction (its lease row locked) loses
        its session after the store's lock timeout, so it cannot hold a takeover back."""
        if self.store.engine.dialect.name == "postgresql":
            ms = round(self.store.timeouts.lock * 1000)
            conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {ms}"))
        return conn

    def _holds(self, conn: Any) -> bool:
        """Inside a transaction: lock the lease row where it is still ours, epoch and all, and
        unexpired (``FOR SHARE``: a takeover waits for the commit); whether it is."""
        t = JudgeLeaseRow.__table__  # type: ignore[attr-defined]
        ours = select(t.c.epoch).where(t.c.name == LEASE, t.c.holder == self.name,
                                       t.c.epoch == self.epoch, t.c.expires_at > self._now())  # fmt: skip
        return conn.execute(ours.with_for_update(read=True)).first() is not None

    def fence(self, conn: Any) -> None:
        """Fence a write of the leader's alone, made in a transaction on ``conn`` (the store
        calls it first in ``Store.rewrite_history``): it commits before a new leader reads the
        history, or not at all -- :class:`StoreError` (rolled back) if our lease does not hold."""
        if not self._holds(self._bounded(conn)):
            raise StoreError(f"not the leader: the judging lease is not ours ({self.holder} "
                             "holds it, or it ran out)")  # fmt: skip

    def _fenced(self, changes: list[VerdictChange]) -> bool:
        """Write ``changes`` iff our lease holds (its row locked meanwhile); False: it does not."""
        v = VerdictChangeRow.__table__  # type: ignore[attr-defined]
        insert = pg_insert if self.store.engine.dialect.name == "postgresql" else sqlite_insert
        rows = [_row(c) for c in changes]
        with self.store.session("writing", f"{len(rows)} verdict changes") as s:
            conn = self._bounded(s.connection())
            if not self._holds(conn):
                s.rollback()
                return False
            if rows:
                conn.execute(insert(v).on_conflict_do_nothing(), rows)
            s.commit()
        return True

    async def flush(self) -> bool:
        """Write the unwritten changes now (before the history is rewritten, netmon.history):
        whether all are written and the lease holds."""
        if self.leading() and self.unwritten:
            await self._try("writing verdict changes", self.write)
        return self.leading() and not self.unwritten

    async def write(self) -> None:
        """Write the leader's unwritten changes (fenced); step down if the lease is gone."""
        batch = list(self.unwritten)
        if not await asyncio.to_thread(self._fenced, batch):
            self._step_down("its lease was taken")
            return
        del self.unwritten[: len(batch)]

    # --- takeover ---------------------------------------------------------------------------
    async def take_over(self, fresh: bool = True) -> None:
        """Catch up, judge, and write what the history lacks; then lead (``fresh``: the
        lease is newly ours, else the leader reconciles what it judged while unsure of it)."""
        self.shadow = sorted(self.unwritten + self.shadow, key=lambda c: c.at or 0.0)
        self.unwritten, self.leader = [], False
        await self.tail(catch_up=True)
        self.monitor.evaluate()
        upto = len(self.shadow)
        shadow = self.shadow[:upto]
        since = min((c.at or 0.0 for c in shadow), default=time.time()) - MATCH_WITHIN
        stored = await asyncio.to_thread(self._history, since)
        current = dict(self.monitor.status)
        missing = lacking(shadow, stored, set(current))
        missing += [_now_change(st) for sid, st in current.items()
                    if _ends_on(stored, missing, sid) != st.verdict.value]  # fmt: skip
        if not await asyncio.to_thread(self._fenced, missing):
            log.warning("judging: lease lost during the takeover; still a follower")
            return
        self.leader, self.takeovers = True, self.takeovers + fresh
        self.unwritten = self.shadow[upto:]
        self.shadow = []
        if fresh or missing:
            log.info("judging: leader now (epoch %d); %d verdict changes the history lacked "
                     "written", self.epoch, len(missing))  # fmt: skip

    def _history(self, since: float) -> dict[str, list[VerdictChange]]:
        """Each site's stored changes judged at or after ``since`` (oldest first), or its
        latest one if none was."""
        v = VerdictChangeRow.__table__  # type: ignore[attr-defined]
        q = select(v).where(v.c.changed_at >= since).order_by(v.c.changed_at, v.c.id)
        found: dict[str, list[VerdictChange]] = {}
        with self.store.reading("the recent verdict history"), self.store.engine.connect() as c:
            for r in c.execute(q).all():
                found.setdefault(r.site_id, []).append(_change(r))
        for site_id, latest in self.store.latest_verdicts().items():
            found.setdefault(site_id, [latest])
        return found

    # --- the tail ---------------------------------------------------------------------------
    async def tail(self, catch_up: bool = False) -> int:
        """Fold the results other servers stored since the last tail, in chunks of
        :data:`TAIL_ROWS`, at most :data:`TAIL_CHUNKS` of them (the rest next round;
        ``catch_up``: all, as a takeover must), the event loop running between two; how many."""
        if self.cursor < 0:
            self.cursor, self.boot_cut = await asyncio.to_thread(self._start_cursor)
        n, done = 0, 0
        while catch_up or done < TAIL_CHUNKS:
            rows = await asyncio.to_thread(self._read_tail, self.cursor, sorted(self.gaps))
            self._note_gaps([r[0] for r in rows])
            n += self._fold_rows(rows)
            done += 1
            if len(rows) < TAIL_ROWS:
                break
            await asyncio.sleep(0)
        self.tailed += n
        return n

    def _fold_rows(self, rows: list[tuple[int, str, str, ProbeResult]]) -> int:
        served: set[str] = set()
        n = 0
        for row_id, site_id, device, result in rows:
            if self._fold(row_id, site_id, device, result):
                n += 1
                if self._serves_again(site_id, result):
                    served.add(site_id)
        if served and self.fleet is not None:
            self.fleet.served(served)
        return n

    def _forget_mine(self) -> None:
        """Forget the results taken here a while ago, once all are written (a tail would have
        seen them); past the store's own bound, the oldest."""
        if self.mine and (not self.store.pending or len(self.mine) > self.store.max_pending):
            cutoff = time.monotonic() - MINE_KEPT
            self.mine = {k: at for k, at in self.mine.items() if at > cutoff}
            if len(self.mine) > self.store.max_pending:
                self.mine = dict(list(self.mine.items())[-self.store.max_pending :])

    def _fold(self, row_id: int, site_id: str, device: str, result: ProbeResult) -> bool:
        key = (site_id, device, result.kind, result.started_at)
        if self.mine.pop(key, None) is not None:
            return False  # taken here, folded then
        boot = row_id <= self.boot_cut  # the tail's first minute: maybe in the refill already
        if boot and result.started_at <= self.monitor.folded_until.get(key[:3], -math.inf):
            return False
        self.monitor.fold_stored(site_id, device, result)
        if not boot:  # a replay another server took is late here too (netmon.history)
            self.monitor.history.note(site_id, result, self.monitor.clock())
        return True

    def _serves_again(self, site_id: str, result: ProbeResult) -> bool:
        fleet = self.fleet
        if fleet is None or site_id not in fleet.unwatched or site_id not in fleet.owners:
            return False
        return result.started_at > fleet.unwatched[site_id]

    def _start_cursor(self) -> tuple[int, int]:
        """Where the tail starts, and the highest id it may find in the start-up refill. At
        start: the rows of the last minute (the refill read most of them: skipped by their
        start). After a time alone: every row written since three renewals ago (a new peer's
        first rows, replays too; this server's own are still known by key)."""
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        recent = select(func.min(t.c.id)).where(t.c.ts >= time.time() - 60.0)
        with self.store.reading("where the results tail starts"), self.store.engine.connect() as c:
            first = c.execute(recent).scalar() if not self._tops else None
            top = int(c.execute(select(func.max(t.c.id))).scalar() or 0)
        if self._tops:
            start, self._tops = min(top, self._tops[0]), []
            return start, 0
        return (int(first) - 1 if first is not None else top), top

    def _read_tail(self, cursor: int, gaps: list[int]) -> list[tuple[int, str, str, ProbeResult]]:
        t = ProbeResultRow.__table__  # type: ignore[attr-defined]
        where = (t.c.id > cursor) | t.c.id.in_(gaps) if gaps else t.c.id > cursor
        after = min(gaps[0] - 1, cursor) if gaps else cursor
        return list(itertools.islice(self.store._read_results(where, after, TAIL_ROWS), TAIL_ROWS))

    def _note_gaps(self, ids: list[int]) -> None:
        """Move the cursor to the highest id read; await the ids below it not seen."""
        seen = set(ids)
        for i in seen:
            self.gaps.pop(i, None)
        top = max(seen, default=self.cursor)
        now = time.monotonic()
        if top > self.cursor:
            for i in range(max(self.cursor + 1, top - GAPS_KEPT), top):  # the newest, at most
                if i not in seen:
                    self.gaps[i] = now
            self.cursor = top
        cutoff = now - GAP_WAIT
        self.gaps = {i: at for i, at in self.gaps.items() if at > cutoff}
        if len(self.gaps) > GAPS_KEPT:
            self.gaps = dict(sorted(self.gaps.items())[-GAPS_KEPT:])


def lacking(shadow: list[VerdictChange], stored: dict[str, list[VerdictChange]],
            sites: set[str]) -> list[VerdictChange]:  # fmt: skip
    """The shadow changes the stored history lacks, per site, in order (see the docstring)."""
    by_site: dict[str, list[VerdictChange]] = {}
    for c in shadow:
        by_site.setdefault(c.site_id, []).append(c)
    out: list[VerdictChange] = []
    for site_id, mine in by_site.items():
        if site_id in sites:
            out += _after_last_match(mine, stored.get(site_id, []))
    return out


def _after_last_match(
    mine: list[VerdictChange], theirs: list[VerdictChange]
) -> list[VerdictChange]:
    start, last = 0, None  # shadow index after the last match; the history's last verdict
    cut = -math.inf
    for c in theirs:
        best = None
        for i in range(start, len(mine)):
            gap = abs((mine[i].at or 0.0) - (c.at or 0.0))
            nearer = best is None or gap < abs((mine[best].at or 0.0) - (c.at or 0.0))
            if mine[i].verdict == c.verdict and gap <= MATCH_WITHIN and nearer:
                best = i
        if best is not None:
            start = best + 1
        last, cut = c.verdict, (c.at or 0.0) if best is None else -math.inf
    out: list[VerdictChange] = []
    for c in mine[start:]:
        if (c.at or 0.0) > cut and c.verdict != last:
            out.append(c)
            last = c.verdict
    return out


def _ends_on(stored: dict[str, list[VerdictChange]], missing: list[VerdictChange],
             site_id: str) -> str | None:  # fmt: skip
    """The verdict the history of ``site_id`` ends on once ``missing`` is written."""
    for c in reversed(missing):
        if c.site_id == site_id:
            return c.verdict
    theirs = stored.get(site_id)
    return theirs[-1].verdict if theirs else None


def _now_change(status: SiteStatus) -> VerdictChange:
    """The change to a site's verdict as judged now (the history ends on another)."""
    reasons = [asdict(r) for r in status.judgement.reasons]
    return VerdictChange(status.site.id, status.verdict.value, status.since, reasons, time.time())


def _row(c: VerdictChange) -> dict[str, Any]:
    at = c.at if c.at is not None else time.time()
    return {"site_id": c.site_id, "verdict": c.verdict, "since": c.since,
            "reasons": json.dumps(c.reasons), "changed_at": at}  # fmt: skip


def _change(r: Any) -> VerdictChange:
    return VerdictChange(r.site_id, r.verdict, r.since, json.loads(r.reasons or "[]"),
                         r.changed_at, r.id)  # fmt: skip


__all__ = ["JudgeLeaseRow", "Judging", "lacking", "server_name"]
