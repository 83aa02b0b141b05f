"""The store on embedded SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel

from netmon.errors import StoreError
from netmon.store import ProbeResultRow, Store, VerdictChange, make_engine
from probes.base import ProbeResult
from probes.snmp_findings import AccessPoint, SnmpFindings

T0 = 1_800_000_000.0


def result(ts: float, received: int = 5) -> ProbeResult:
    rtts = tuple(0.001 * (i + 1) for i in range(received))
    return ProbeResult(
        "icmp", received > 0, ts, 0.4, 5, received, rtts, "" if received else "no reply"
    )


def test_round_trip_and_batches(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    store.migrate()  # idempotent
    for i in range(12_000):
        store.add_result("dh-ranchi", f"ap-{i % 40}", result(T0 + i, received=i % 6))
    assert store.flush(batch_size=5000) == 12_000
    assert store.written == 12_000 and not store.pending
    got = list(store.results_since(T0 + 11_990))
    assert [r.started_at for _, _, r in got] == [T0 + i for i in range(11_990, 12_000)]
    site, device, r = got[-1]
    assert (site, device) == ("dh-ranchi", "ap-39")
    assert r == result(T0 + 11_999, received=11_999 % 6)
    assert ("dh-ranchi", "ap-0", "icmp") in store.devices_ever_up()
    rows = store.results("dh-ranchi", "ap-1", since=T0, limit=3)
    assert [row.ts for row in rows] == [T0 + 11_961, T0 + 11_921, T0 + 11_881]
    assert store.prune(before=T0 + 6000) == 6000
    store.close()


def test_verdict_changes(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    reasons = [{"criterion": "uplink_down", "message": "wan wan-1 unreachable"}]
    store.add_verdict_change(VerdictChange("a", "fully_functional", T0, []))
    store.add_verdict_change(VerdictChange("a", "down", T0 + 60, reasons))
    store.add_verdict_change(VerdictChange("b", "degraded", T0 + 5, []))
    store.flush()
    latest = store.latest_verdicts()
    assert latest["a"] == VerdictChange("a", "down", T0 + 60, reasons)
    assert latest["b"].verdict == "degraded"
    assert [c.verdict for c in store.verdict_history("a")] == ["down", "fully_functional"]
    store.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_database_loses_nothing_taken(database_url: str) -> None:
    """Writes to a dead database fail loudly, keep every row queued, and land once it is back."""
    dead = Store(f"postgresql+psycopg://netmon@127.0.0.1:{closed_port()}/netmon?connect_timeout=2")
    for i in range(100):
        dead.add_result("s", "wan-1", result(T0 + i))
    with pytest.raises(StoreError, match="writing the schema failed"):
        dead.flush()  # never reached at start: the first flush migrates
    assert len(dead.pending) == 100 and dead.errors == 1 and dead.written == 0
    dead.engine.dispose()
    dead.engine = make_engine(database_url)  # the database comes back
    dead.migrate()
    assert dead.flush() == 100
    assert len(list(dead.results_since(0))) == 100
    dead.close()


def test_backlog_is_bounded_and_counts_drops() -> None:
    store = Store("sqlite://", max_pending=10)
    for i in range(15):
        store.add_result("s", "d", result(T0 + i))
    assert len(store.pending) == 10 and store.dropped == 5
    assert store.pending[0][1]["ts"] == T0 + 5  # the oldest went first


def test_schema_is_created_with_indexes(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    insp = inspect(store.engine)
    assert {"probe_result", "verdict_change", "schema_version"} <= set(insp.get_table_names())
    names = {ix["name"] for ix in insp.get_indexes("probe_result")}
    assert "ux_probe_result_key" in names
    assert "ux_verdict_change_key" in {ix["name"] for ix in insp.get_indexes("verdict_change")}
    store.close()


def test_refuses_newer_schema(database_url: str) -> None:
    from sqlmodel import Session

    from netmon.store import SchemaVersionRow

    store = Store(database_url)
    store.migrate()
    with Session(store.engine) as s:
        s.add(SchemaVersionRow(version=999))
        s.commit()
    with pytest.raises(StoreError, match="v999 is newer"):
        store.migrate()
    store.close()


def test_a_version_1_database_is_migrated(database_url: str) -> None:
    """An older database (no ``extra`` column) is brought up to date at start-up, rows kept."""
    from sqlalchemy import text

    store = Store(database_url)
    store.migrate()
    with store.engine.begin() as conn:
        downgrade_to_v2(conn)
        conn.execute(text("ALTER TABLE probe_result DROP COLUMN extra"))
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(text("INSERT INTO schema_version (version) VALUES (1)"))
        conn.execute(
            text(
                "INSERT INTO probe_result (site_id, device, kind, ts, duration, ok, sent, received, rtts, reason)"
                " VALUES ('s', 'd', 'icmp', 1.0, 0.1, true, 1, 1, '[0.001]', '')"
            )
        )
    store.close()
    store = Store(database_url)
    store.migrate()
    assert "extra" in {c["name"] for c in inspect(store.engine).get_columns("probe_result")}
    ((_, _, old),) = list(store.results_since(0))
    assert old.rtts == (0.001,) and old.findings is None
    found = SnmpFindings("generic", True, rebooted=True, aps=(AccessPoint(name="ap-1"),))
    snmp = ProbeResult("snmp", True, 2.0, 0.2, 3, 3, (0.2,), "", found)
    store.add_result("s", "wlc", snmp)
    store.flush()
    assert list(store.results_since(2.0))[0][2].findings == found
    store.close()


def downgrade_to_v2(conn: Any) -> None:
    """A database as schema v2 left it: no unique keys, no ``changed_at``."""
    from sqlalchemy import text

    for statement in (
        "DROP INDEX ux_probe_result_key", "DROP INDEX ux_verdict_change_key",
        "ALTER TABLE verdict_change DROP COLUMN changed_at",
        "CREATE INDEX ix_probe_result_site_device_ts ON probe_result (site_id, device, ts)",
        "UPDATE schema_version SET version = 2",
    ):  # fmt: skip
        conn.execute(text(statement))


def test_a_version_2_database_loses_its_duplicates_and_gets_unique_keys(database_url: str) -> None:
    """Duplicates an older netmon wrote (a batch re-sent after its COMMIT's reply was lost) are
    removed, the first of each kept; then a row written twice is stored once."""
    from sqlalchemy import text

    store = Store(database_url)
    store.migrate()
    with store.engine.begin() as conn:
        downgrade_to_v2(conn)
        t = SQLModel.metadata.tables["probe_result"]
        rows = [ProbeResultRow.values("s", "d", result(T0 + i % 3)) for i in range(7)]
        conn.execute(t.insert(), rows)  # T0, T0+1, T0+2 stored three, two and two times
        for _ in range(2):
            conn.execute(text("INSERT INTO verdict_change (site_id, verdict, since, reasons) "
                              "VALUES ('s', 'down', 1.0, '[]')"))  # fmt: skip
    store.close()
    store = Store(database_url)
    store.migrate()
    assert sorted(r.started_at for _, _, r in store.results_since(0)) == [T0, T0 + 1, T0 + 2]
    assert len(store.verdict_history("s")) == 2  # rows of v2 have no key: both kept
    for _ in range(2):
        store.add_result("s", "d", result(T0 + 1))
        store.add_result("s", "d", result(T0 + 3))
        store.add_verdict_change(VerdictChange("s", "degraded", T0, [], at=T0 + 10))
        assert store.flush() == 3
    assert sorted(r.started_at for _, _, r in store.results_since(0)) == [T0 + i for i in range(4)]
    assert [c.verdict for c in store.verdict_history("s")] == ["degraded", "down", "down"]
    store.close()


def test_a_version_4_database_loses_the_site_day_district_index(database_url: str) -> None:
    """v5 drops ``ix_site_day_district`` (no query reads site_day by district); rows kept."""
    from sqlalchemy import text

    store = Store(database_url)
    store.migrate()
    assert "ix_site_day_district" not in {
        ix["name"] for ix in inspect(store.engine).get_indexes("site_day")
    }
    with store.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_site_day_district ON site_day (district)"))
        conn.execute(text("INSERT INTO site_day VALUES ('s', '2026-11-30', 'Ranchi', 'phc', "
                          "1, 2, 3, 4, 5, 6, 7)"))  # fmt: skip
        conn.execute(text("UPDATE schema_version SET version = 4"))
    store.close()
    store = Store(database_url)
    store.migrate()
    names = {ix["name"] for ix in inspect(store.engine).get_indexes("site_day")}
    assert "ix_site_day_district" not in names and "ix_site_day_day" in names
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT district, no_data FROM site_day")).one() == ("Ranchi", 6)
        assert conn.execute(text("SELECT max(version) FROM schema_version")).scalar_one() == 5
    store.close()
