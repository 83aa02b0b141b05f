"""Packed raw hours (netmon.chunks, netmon.compaction) on SQLite and PostgreSQL: the format's
round trip is exact; after compaction every reader of raw results (the store's readers, the
device hours, availability) gives the answer it gave before; a late row is merged into its
packed hour once; a second run changes nothing; a run that fails mid-hour leaves all as it was.
Device hours packed a device day a row: written, re-rolled, read back and migrated exactly."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import OperationalError

import netmon.compaction as compaction
from netmon import chunks
from netmon.chunks import pack, unpack
from netmon.compaction import Compactor, ResultChunkRow, compact
from netmon.errors import StoreError
from netmon.rollup import (
    DeviceDayRow,
    device_hour_rows,
    last_hour,
    live_days,
    prune_rollups,
    read_hours,
    write_hours,
)
from netmon.snapshot import Snapshotter
from netmon.store import ProbeResultRow, Store
from probes.base import ProbeResult
from tests.test_rollup import DAY0, IST, SITE, Drive, result

KEY_COLUMNS = ("site_id", "device", "kind")


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    t0 = 1_780_000_000.0 + rng.random()
    rows = []
    for i in range(n):
        ok = rng.random() > 0.2
        rtts = tuple(0.02 + rng.gauss(0, 0.002) for _ in range(5)) if ok else ()
        r = ProbeResult("icmp", ok, t0 + i * 60 + rng.random() / 100, rng.uniform(0.2, 4.0), 5,
                        len(rtts), rtts, "" if ok else rng.choice(["no reply", "नहीं"]))  # fmt: skip
        row = ProbeResultRow.values("s", "d", r)
        for name in KEY_COLUMNS:
            del row[name]
        rows.append(row)
    return rows


def test_a_chunk_gives_back_every_value_exactly() -> None:
    rows = _rows(60, 1)
    odd = dict(rows[0], ts=rows[0]["ts"] - 7.0, rtts="[1, 2.5]", rtt_min=None, rtt_avg=-0.0,
               jitter=math.nan, duration=1e300, extra=json.dumps({"if": [1, "x"]}))  # fmt: skip
    odd2 = dict(rows[1], ts=rows[1]["ts"] - 9.0, rtts="", rtt_max=0.123456789012345, ok=False)
    rows += [odd, odd2, dict(rows[2], ts=rows[2]["ts"] + 0.5, rtt_min=rows[2]["rtt_min"] + 1e-12)]
    rng = random.Random(2)
    rng.shuffle(rows)
    back = unpack(pack(rows))
    want = sorted(rows, key=lambda r: r["ts"])
    assert [{k: repr(v) for k, v in r.items()} for r in back] == [
        {k: repr(r[k]) for k in back[0]} for r in want
    ]
    assert set(back[0]) == set(want[0])


# pack(_rows(4, 7)) as netmon wrote it with blob version 3 (before the escaped and line layouts)
V3_CHUNK = bytes.fromhex(
    "0378dae33063e7600402961ff3a75f5e77609efd826dd3f7b0c831303c6f992ea3c1069663fdd268a575bd"
    "66474cc3bf034e2738181819183958b81818b89819b838b9b8989980a407bb08231cb0ee99202d975d1abf"
    "af5a5eec94c2f63b117fa315a6fe9a9bc4c6121dabc08806d8181898b514a295f2f2158a520b722a957414"
    "949462199818998438a2412c200000e583255c"
)


def test_a_version_3_chunk_is_still_read_exactly() -> None:
    want = sorted(_rows(4, 7), key=lambda r: r["ts"])
    assert V3_CHUNK[:1] == b"\x03" and pack(want)[:1] == chunks.VERSION != b"\x03"
    assert [{k: repr(v) for k, v in r.items()} for r in unpack(V3_CHUNK)] == [
        {k: repr(r[k]) for k in unpack(V3_CHUNK)[0]} for r in want
    ]


def _columns() -> dict[str, list[int]]:
    rng = random.Random(4)
    noise = [200_000 + round(rng.gauss(0, 5000)) for _ in range(300)]
    return {
        "empty": [], "one": [7], "two": [-3, 2**70], "constant": [60] * 50,
        "line with jitter": [17_800_020_030_091_854 + i * 600_000_000 + rng.randrange(200_000)
                             for i in range(60)],
        "noise": noise, "noise and an outlier": noise[:150] + [5_000_000] + noise[150:],
        "wide": [rng.randrange(-(2**200), 2**200) for _ in range(20)],
        "steps": [i * i * 3 - 40 * i for i in range(40)],
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_columns()))
def test_every_integer_layout_gives_back_its_column(name: str) -> None:
    values = _columns()[name]
    coded = chunks._ints(values)
    assert chunks._read_ints(coded, len(values)) == values
    escaped = chunks._escaped(values)
    if escaped is not None:
        assert chunks._unescaped(escaped, len(values)) == values
    for line in chunks._line(values):
        assert chunks._unline(line, len(values)) == values


def test_an_outlier_costs_its_own_width_not_every_values() -> None:
    """One failed probe's 5 s among RTT noise: a few bytes more, not a wider code for all."""
    cols = _columns()
    plain, spiked = cols["noise"], cols["noise and an outlier"]
    assert len(chunks._ints(spiked)) <= len(chunks._ints(plain)) + 6
    assert chunks._read_ints(chunks._ints(spiked), len(spiked)) == spiked
    assert chunks._ints(cols["line with jitter"])[0] in (chunks.LINE, chunks.LINE + 1)


def test_a_chunk_is_small() -> None:
    """An hour of one-minute results with noisy RTTs in well under 40 bytes a result."""
    assert len(pack(_rows(60, 3))) < 60 * 40


def _answers(store: Store, d: Drive, end: float) -> dict[str, Any]:
    """What every raw reader says over the drive's hours."""
    t0 = DAY0 + 3600
    sites = d.monitor.inventory.sites
    keyed = [(s, dev, r) for s, dev, r in store.results_since(t0)]
    return {
        "hours": sorted(device_hour_rows(store, int(t0), end), key=lambda r: sorted(r.items())),
        "since": sorted(keyed, key=lambda x: (x[0], x[1], x[2].kind, x[2].started_at)),
        "device": list(store.device_results(SITE, "wan-1", "icmp", t0)),
        "listing": [
            (r.ts, r.device, r.ok, r.rtt_min, r.rtt_avg, r.duration, r.rtts, r.reason)
            for r in store.results(SITE, None, t0, limit=10_000)
        ],  # fmt: skip
        "page": [
            r.ts for r in store.results(SITE, "ap-1", t0, limit=7, before=(t0 + 4000, "", ""))
        ],
        "ever_up": (store.devices_ever_up(), store.ever_up(SITE, "wan-1", "icmp")),
        "days": {
            i: [(day, a.seconds, a.outages) for day, a in acc]
            for i, acc in live_days(store, sites, IST, DAY0, end).items()
        },  # fmt: skip
    }


def _counts(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        raw = conn.execute(select(func.count()).select_from(ProbeResultRow)).scalar_one()
        packed = conn.execute(select(func.count()).select_from(ResultChunkRow)).scalar_one()
    return int(raw), int(packed)


def _blobs(store: Store) -> list[Any]:
    c = ResultChunkRow.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(c).order_by(*c.primary_key.columns))]


@pytest.fixture
def driven(database_url: str) -> Drive:
    store = Store(database_url)
    store.migrate()
    d = Drive(store)  # 2 h of wan-1 and ap-1 every 20 s, wan-1 cut for 10 minutes
    d.run(7200, cut=lambda t: DAY0 + 5000 <= t < DAY0 + 5600)
    return d


def test_compaction_changes_no_answer_and_a_rerun_changes_nothing(driven: Drive) -> None:
    store, end = driven.monitor.store, driven.clock.now
    before = _answers(store, driven, end)
    raw_before = _counts(store)[0]
    packed = compact(store, end + 3 * 3600)
    raw, chunks = _counts(store)
    assert packed == raw_before - 1 and raw == 1  # the newest row stays raw (ids only grow)
    assert chunks == 2 * 3  # wan-1 and ap-1 in 3 UTC hours (the drive starts on an IST :00)
    assert _answers(store, driven, end) == before
    blobs = _blobs(store)
    assert compact(store, end + 3 * 3600) == 0
    assert _blobs(store) == blobs
    store.close()


def test_a_late_row_is_merged_once_into_its_packed_hour(driven: Drive) -> None:
    store, end = driven.monitor.store, driven.clock.now
    compact(store, end + 3 * 3600)
    late = result(DAY0 + 3600 + 5, False)  # between two results of a packed hour
    store.add_result(SITE, "wan-1", late)
    store.flush()
    with_late = _answers(store, driven, end)
    assert late in with_late["device"]
    assert compact(store, end + 3 * 3600) == 1
    assert _answers(store, driven, end) == with_late
    store.add_result(SITE, "wan-1", late)  # a journal replayed: already packed
    store.add_result(SITE, "ap-1", result(end + 60, True))  # the newest: stays raw
    store.flush()
    compact(store, end + 3 * 3600)
    assert list(store.device_results(SITE, "wan-1", "icmp", DAY0)).count(late) == 1
    assert _counts(store)[0] == 1
    store.close()


def test_a_compaction_cut_short_loses_and_doubles_nothing(
    driven: Drive, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, end = driven.monitor.store, driven.clock.now
    before, counts = _answers(store, driven, end), _counts(store)
    upsert = compaction._upsert

    def then_die(conn: Any, rows: list[dict[str, Any]]) -> None:
        upsert(conn, rows)  # the chunks are written, the raw rows not deleted yet
        conn.execute(text("SELECT 1"))
        raise OperationalError("DELETE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(compaction, "_upsert", then_die)
    with pytest.raises(StoreError):
        compact(store, end + 3 * 3600)
    assert _counts(store) == counts and _answers(store, driven, end) == before
    monkeypatch.setattr(compaction, "_upsert", upsert)
    assert compact(store, end + 3 * 3600) == counts[0] - 1
    assert _answers(store, driven, end) == before
    store.close()


def test_compaction_never_packs_above_the_snapshot_cut(driven: Drive) -> None:
    store, end = driven.monitor.store, driven.clock.now
    t = ProbeResultRow.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        ids = sorted(conn.execute(select(t.c.id)).scalars())
    cut = ids[len(ids) // 3]
    compact(store, end + 3 * 3600, upto_id=cut)
    with store.engine.connect() as conn:
        left = set(conn.execute(select(t.c.id)).scalars())
    assert left == {i for i in ids if i > cut}
    assert len(list(store.results_after(cut))) == len(left)  # what a restart refolds by id
    store.close()


def _hours(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` device hours of two devices from an hour before a UTC midnight on (full floats)."""
    rng = random.Random(seed)
    h0 = 1_780_012_800 - 3600  # 23:00 UTC
    return [{"site_id": "s", "device": dev, "kind": "icmp", "hour": h0 + i * 3600,
             "probes": 60, "failed": rng.randrange(3), "sent": 300, "received": 290 + i % 10,
             "rtt_min": round(rng.uniform(0.001, 0.01), 7) if i % 5 else None,
             "rtt_avg": rng.uniform(0.01, 0.02) if i % 5 else None, "rtt_max": rng.uniform(0.02, 1),
             "outage_seconds": rng.choice([0.0, rng.uniform(0, 3600)])}
            for dev in ("a", "b") for i in range(n)]  # fmt: skip


def _by_key(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["site_id"], r["device"], r["kind"], r["hour"]))


def test_device_hours_are_packed_a_day_a_row_exactly(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    rows = _hours(30, 4)  # 23:00 to 04:00 of the day after next: 3 days a device
    assert write_hours(store, rows[:20] + rows[30:50]) == 40
    again = [dict(r, failed=r["failed"] + 7) for r in rows[18:30] + rows[48:]]
    assert write_hours(store, again) == 24  # 2 hours rolled again, 10 new, per device
    want = _by_key(rows[:18] + rows[30:48] + again)
    lo, hi = rows[0]["hour"], rows[-1]["hour"] + 3600
    got = _by_key(read_hours(store, lo, hi))
    assert [{k: repr(v) for k, v in r.items()} for r in got] == [
        {k: repr(r[k]) for k in got[0]} for r in want
    ]
    assert read_hours(store, lo + 3600, lo + 7200) == [r for r in want if r["hour"] == lo + 3600]
    assert last_hour(store) == rows[-1]["hour"]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DeviceDayRow)).scalar_one() == 2 * 3
    assert prune_rollups(store, lo + 3600 * 2) == 2  # the first day (one hour long) of each
    store.close()


def test_a_version_3_database_gets_its_device_hours_packed(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    rows = _hours(26, 5)
    names = list(rows[0])
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE device_hour (site_id VARCHAR(64), device VARCHAR(64), "
                          "kind VARCHAR(16), hour INTEGER, probes INTEGER, failed INTEGER, "
                          "sent INTEGER, received INTEGER, rtt_min FLOAT, rtt_avg FLOAT, "
                          "rtt_max FLOAT, outage_seconds FLOAT)"))  # fmt: skip
        marks = ", ".join(f":{n}" for n in names)
        conn.execute(text(f"INSERT INTO device_hour ({', '.join(names)}) VALUES ({marks})"), rows)
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(text("INSERT INTO schema_version (version) VALUES (3)"))
    store.close()
    store = Store(database_url)
    store.migrate()
    assert not inspect(store.engine).has_table("device_hour")
    got = read_hours(store, 0, 2e9)
    assert [{k: repr(v) for k, v in r.items()} for r in _by_key(got)] == [
        {k: repr(r[k]) for k in got[0]} for r in _by_key(rows)
    ]
    store.close()


async def test_the_monitor_packs_nothing_a_restart_would_refold_by_id(
    driven: Drive, tmp_path: Path
) -> None:
    """With snapshots on, nothing above the latest written snapshot's cut is packed (none
    yet: nothing); without them, every old hour is."""
    monitor, store = driven.monitor, driven.monitor.store
    monitor.compactor = Compactor()
    monitor.snapshot = Snapshotter(tmp_path / "state.snapshot", every=300)
    driven.clock.advance(3 * 3600)
    assert await monitor.compact() == 0
    raw = _counts(store)[0]
    monitor.snapshot = None
    assert await monitor.compact() == raw - 1
    store.close()


def test_a_replayed_row_of_a_packed_hour_counts_once_before_it_is_merged(driven: Drive) -> None:
    """A journal replayed after compaction packed its (already written) row: the hourly
    figures and the listing count it once while it is both raw and packed."""
    store, end = driven.monitor.store, driven.clock.now
    compact(store, end + 3 * 3600)
    before = _answers(store, driven, end)
    again = store.results(SITE, "wan-1", DAY0, limit=10_000)[-1]  # the oldest: packed
    store.add_result(SITE, "wan-1", result(again.ts, again.ok))
    store.flush()
    assert _counts(store)[0] == 2
    after = _answers(store, driven, end)
    assert (after["hours"], after["listing"]) == (before["hours"], before["listing"])
    store.close()
