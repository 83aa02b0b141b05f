"""Recurring maintenance (netmon.inventory.recurring): occurrences across day and month
boundaries, in IST and in a zone with DST; the inventory's errors at their lines; and, on a
monitor driven over a real store, a cut inside a recurring window is maintenance, never down
nor an outage, counted as maintenance seconds by availability and the site_day rollup, and
listed by the maintenance API as recurring."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import httpx
import pytest

from netmon.errors import ConfigError
from netmon.inventory import Recurring, parse_inventory
from netmon.monitor import Monitor
from netmon.rollup import roll, stored_days
from netmon.store import Store
from tests.test_rollup import DAY0, SITE, Drive, client_of, iso  # noqa: F401 (a fixture)

IST = ZoneInfo("Asia/Kolkata")
NY = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *parts: int) -> float:
    return dt.datetime(*parts, tzinfo=tz).timestamp()  # type: ignore[misc]


def local(spans: list[tuple[float, float]], tz: ZoneInfo) -> list[tuple[str, float]]:
    return [(dt.datetime.fromtimestamp(a, tz).isoformat(), (b - a) / 3600) for a, b in spans]


def rule(**fields: object) -> Recurring:
    return Recurring.model_validate({"reason": "BSNL work", **fields})


def test_weekly_across_a_month_boundary_and_midnight() -> None:
    r = rule(every="weekly", days=["Tue", "sat"], start="23:00", duration="3h")
    spans = r.spans(at(IST, 2026, 11, 28, 0, 0), at(IST, 2026, 12, 2, 0, 30))
    assert local(spans, IST) == [("2026-11-28T23:00:00+05:30", 3.0),
                                 ("2026-12-01T23:00:00+05:30", 3.0)]  # fmt: skip
    # the occurrence begun the evening before counts from the start of the stretch asked for
    assert local(r.spans(at(IST, 2026, 11, 29, 1, 0), at(IST, 2026, 11, 29, 2)), IST) == [
        ("2026-11-28T23:00:00+05:30", 3.0)
    ]
    assert r.spans(at(IST, 2026, 11, 29, 2, 0), at(IST, 2026, 12, 1, 23)) == []  # ends at 02:00


def test_monthly_skips_months_without_the_day() -> None:
    r = rule(every="monthly", days=[31, 1], start="06:00", duration="1h")
    spans = r.spans(at(IST, 2026, 1, 15), at(IST, 2026, 5, 15))
    assert [s[0][:10] for s in local(spans, IST)] == [
        "2026-01-31", "2026-02-01", "2026-03-01", "2026-03-31", "2026-04-01", "2026-05-01"]  # fmt: skip


def test_another_zone_across_its_dst_changes() -> None:
    """New York: 2026-03-08 02:00 does not exist, 2026-11-01 01:30 happens twice."""
    daily = rule(every="daily", start="01:30", duration="2h", timezone="America/New_York")
    spring = daily.spans(at(NY, 2026, 3, 7, 12), at(NY, 2026, 3, 9, 12))
    assert local(spring, NY) == [
        ("2026-03-08T01:30:00-05:00", 2.0),
        ("2026-03-09T01:30:00-04:00", 2.0),
    ]
    assert dt.datetime.fromtimestamp(spring[0][1], NY).hour == 4  # 2 h of real time: 04:30 EDT
    autumn = daily.spans(at(NY, 2026, 11, 1, 0), at(NY, 2026, 11, 1, 12))
    assert local(autumn, NY) == [("2026-11-01T01:30:00-04:00", 2.0)]  # the first 01:30
    gap = rule(every="daily", start="02:30", duration="1h", timezone="America/New_York")
    lo = gap.spans(at(NY, 2026, 3, 8, 0), at(NY, 2026, 3, 8, 12))[0][0]
    assert dt.datetime.fromtimestamp(lo, NY).isoformat() == "2026-03-08T03:30:00-04:00"
    # the same rule in IST (the default) is 9.5 h earlier in absolute time
    ist = rule(every="daily", start="01:30", duration="2h").spans(
        spring[1][0] - 86400, spring[1][0]
    )
    assert ist[-1][0] == at(IST, 2026, 3, 9, 1, 30)


def test_site_helpers_mix_one_off_and_recurring_windows() -> None:
    inv = parse_inventory("""
sites:
  - id: chc-bundu
    name: CHC Bundu
    district: Ranchi
    type: chc
    maintenance:
      - {every: daily, start: "02:00", duration: 30m, reason: nightly}
      - {start: "2026-12-01T10:00:00+05:30", end: "2026-12-01T11:00:00+05:30", reason: fibre}
""")
    site = inv.sites[0]
    assert site.in_maintenance(at(IST, 2026, 12, 1, 2, 0)).reason == "nightly"  # type: ignore[union-attr]
    assert site.in_maintenance(at(IST, 2026, 12, 1, 2, 30)) is None  # the end is not inside
    assert site.in_maintenance(at(IST, 2026, 12, 1, 10, 59)).reason == "fibre"  # type: ignore[union-attr]
    assert site.maintenance_ended(at(IST, 2026, 12, 1, 9)) == at(IST, 2026, 12, 1, 2, 30)
    assert site.maintenance_ended(at(IST, 2026, 12, 1, 12)) == at(IST, 2026, 12, 1, 11)
    assert site.maintenance_next(at(IST, 2026, 12, 1, 9)) == at(IST, 2026, 12, 1, 10)
    assert site.maintenance_next(at(IST, 2026, 12, 1, 12)) == at(IST, 2026, 12, 2, 2)
    spans = site.maintenance_spans(at(IST, 2026, 12, 1), at(IST, 2026, 12, 3))
    assert len(spans) == 3


BAD = """sites:
  - id: chc-bundu
    name: CHC Bundu
    district: Ranchi
    type: chc
    maintenance:
      - {every: weekly, days: [tues], start: "02:00", duration: 8d, reason: x}
      - {every: daily, days: [mon], start: 12:30, duration: 1h, reason: x, timezone: Mars/Base}
      - {every: monthly, start: "01:00", duration: 1h, reason: x}
      - {every: monthly, days: [32], start: "25:00", duration: 0s, reason: x}
      - {every: yearly, start: "01:00", duration: 1h, reason: x}
"""


def test_bad_rules_are_reported_at_their_lines() -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(BAD, "sites.yaml")
    assert [str(p) for p in info.value.problems] == [
        "sites.yaml:7: sites[0].maintenance[0].days: not a weekday: 'tues' (mon, tue, wed, thu, fri, sat, sun)",
        "sites.yaml:7: sites[0].maintenance[0].duration: a weekly window lasts at most 7 days",
        "sites.yaml:8: sites[0].maintenance[1].days: a daily window takes no days",
        'sites.yaml:8: sites[0].maintenance[1].start: expected a time of day like "02:00", quoted (YAML reads 12:30 as a number)',
        "sites.yaml:8: sites[0].maintenance[1].timezone: must be an IANA time zone name, e.g. Asia/Kolkata",
        "sites.yaml:9: sites[0].maintenance[2].days: a monthly window needs a list of days, e.g. [1, 15]",
        "sites.yaml:10: sites[0].maintenance[3].days: not a day of the month (1 to 31): 32",
        'sites.yaml:10: sites[0].maintenance[3].start: expected a time of day like "02:00", quoted (YAML reads 12:30 as a number)',
        "sites.yaml:10: sites[0].maintenance[3].duration: Input should be greater than 0",
        "sites.yaml:11: sites[0].maintenance[4].every: Input should be 'daily', 'weekly' or 'monthly'",
    ]  # fmt: skip


async def test_a_cut_inside_a_recurring_window_is_maintenance_not_down(
    database_url: str,
    client_of: Callable[[Monitor], httpx.AsyncClient],  # noqa: F811
) -> None:
    """The drive starts at 01:00 IST; the window is every day 01:03 for 2 minutes; wan-1 is cut
    from 01:03:00 to 01:04:50."""
    store = Store(database_url)
    store.migrate()
    d = Drive(store)
    site = d.monitor.inventory.site(SITE)
    assert site is not None
    site.maintenance.append(rule(every="daily", start="01:03", duration="2m"))
    d.run(180)  # to 01:03
    start = d.clock.now
    d.run(60, cut=lambda t: t < start + 110)
    client = client_of(d.monitor)
    now = (await client.get(f"/api/v1/sites/{SITE}")).json()
    assert now["maintenance"] == "BSNL work" and now["verdict"] != "down"
    d.run(240, cut=lambda t: t < start + 110)
    body = (await client.get(f"/api/v1/sites/{SITE}/availability",
                             params={"from": iso(start - 60), "to": iso(d.clock.now)})).json()  # fmt: skip
    assert body["seconds"]["maintenance"] == pytest.approx(120, abs=10)
    assert body["seconds"]["down"] == 0 and body["outages"] == [] and body["availability"] == 1.0
    day = dt.datetime.fromtimestamp(DAY0, IST).date()
    roll(store, d.monitor.inventory, IST, day, day, d.clock.now)
    (row,) = [r for r in stored_days(store, [SITE], day, day)]
    assert row.maintenance == pytest.approx(120, abs=10) and row.down == 0
    listed = (await client.get(f"/api/v1/sites/{SITE}/maintenance")).json()["data"]
    (recurring,) = [w for w in listed if w["recurrence"]]
    assert recurring["recurrence"] == {"every": "daily", "days": None, "start": "01:03",
                                       "duration_seconds": 120.0, "timezone": "Asia/Kolkata"}  # fmt: skip
    assert recurring["start"] == "2026-11-10T19:33:00Z" and not recurring["active"]  # tomorrow's
    store.close()


WIDE = """maintenance:
  - {every: weekly, days: [tue], start: "02:00", duration: 2h, reason: BSNL state-wide}
  - {start: "2026-12-10T10:00:00+05:30", end: "2026-12-10T11:00:00+05:30", reason: OLT, districts: [ranchi]}
sites:
  - {id: chc-bundu, name: CHC Bundu, district: Ranchi, type: chc,
     maintenance: [{every: daily, start: "01:00", duration: 1h, reason: own}]}
  - {id: chc-torpa, name: CHC Torpa, district: Khunti, type: chc}
"""


def test_state_and_district_wide_windows_reach_their_sites_once() -> None:
    inv = parse_inventory(WIDE)
    bundu, torpa = inv.sites
    assert [m.reason for m in bundu.maintenance] == ["own", "BSNL state-wide", "OLT"]
    assert [m.reason for m in torpa.maintenance] == ["BSNL state-wide"]
    assert torpa.in_maintenance(at(IST, 2026, 12, 8, 3, 59)) is not None  # a Tuesday
    again = inv.model_copy(update={"sites": list(inv.sites)})
    again.model_post_init(None)  # as netmon.maintenance.with_windows merges: nothing twice
    assert [len(s.maintenance) for s in again.sites] == [3, 1]
    with pytest.raises(ConfigError) as info:
        parse_inventory(WIDE.replace("[ranchi]", "[Ranchi, Ranch]"), "x.yaml")
    assert [str(p) for p in info.value.problems] == [
        "x.yaml:3: maintenance[1].districts[1]: no site is in the district 'Ranch'"
    ]
