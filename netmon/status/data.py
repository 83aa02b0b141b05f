"""The status pages' data as plain dicts: what a page shows, in no language (codes, numbers,
ISO 8601 times in UTC). Each page's JSON twin is exactly this dict; the templates word it.

A **day of the 90-day bar** (local days of the report time zone) is, from its site_day row:
``outage`` when the site was down some of it (the outages are listed with the day), else
``good`` when it was fully functional by netmon.progress's day rule (fully_functional_ratio ≥
``report.day_threshold``), else ``degraded``; with nothing judged, ``maintenance`` when
announced maintenance covered some of it, ``not_installed`` when that was the verdict, else
``no_data`` (netmon was not watching, or the day is not rolled: never counted as down).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from netmon.inventory import FacilityType, Inventory, Site
from netmon.inventory.models import Maintenance
from netmon.inventory.recurring import Recurring
from netmon.monitor import Monitor, SiteStatus
from netmon.progress import AVAILABILITY_DAYS
from netmon.timeline import Outage, availability, day_bounds, fully_functional_ratio
from netmon.verdict import device_state

BAR_DAYS = 90
NEXT_WITHIN = 62 * 86400.0  # how far ahead a recurring window's next occurrence is looked for
FACILITY_TYPES = FacilityType.__args__  # type: ignore[attr-defined]  # in the inventory's order
JUDGED = ("fully_functional", "degraded", "down", "not_installed")  # seconds a verdict covered
VERDICTS = ("fully_functional", "degraded", "down", "not_installed", "unknown", "not_judged")


def iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def bar_days(today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of the bar ending today."""
    return today - dt.timedelta(days=BAR_DAYS - 1), today


def day_state(seconds: Mapping[str, float] | None, threshold: float) -> str:
    if seconds is None:
        return "no_data"
    judged = sum(seconds[k] for k in JUDGED)
    if judged <= 0:
        return "maintenance" if seconds["maintenance"] > 0 else "no_data"
    if seconds["down"] > 0:
        return "outage"
    if seconds["not_installed"] >= judged:
        return "not_installed"
    ratio = fully_functional_ratio(dict(seconds))
    return "good" if ratio is not None and ratio >= threshold else "degraded"


def names(inventory: Inventory, site: Site) -> dict[str, Any]:
    d = inventory.districts.get(site.district)
    return {"id": site.id, "name": site.name, "name_hi": site.name_hi, "type": site.type,
            "district": site.district, "district_hi": d.name_hi if d else None}  # fmt: skip


def reasons(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Verdict reasons (netmon.verdict.Reason or stored dicts) as plain dicts."""
    return [r if isinstance(r, dict) else asdict(r) for r in raw]


def verdict_now(st: SiteStatus | None) -> dict[str, Any]:
    if st is None:
        return {"verdict": "not_judged", "reasons": [], "since": None}
    return {"verdict": st.verdict.value, "reasons": reasons(st.judgement.reasons),
            "since": iso(st.since)}  # fmt: skip


def outage_dict(o: Outage, read_at: float) -> dict[str, Any]:
    """An outage; ``open`` when it lasted up to the read (``ongoing`` is set by the page when
    the site is still down)."""
    why = [json.loads(r) for r in o.reasons]
    return {"start": iso(o.start), "end": iso(o.end), "seconds": o.seconds,
            "open": o.end >= read_at - 1, "ongoing": False, "reasons": why}  # fmt: skip


def day_spans(first: dt.date, tz: ZoneInfo) -> list[tuple[dt.date, float, float]]:
    """The bar's days from ``first``, each with its bounds (computed once per page)."""
    days = [first + dt.timedelta(days=k) for k in range(BAR_DAYS)]
    return [(d, *day_bounds(d, tz)) for d in days]


def bar(
    days: Mapping[str, Mapping[str, float]],
    outages: Sequence[Outage],
    spans: Sequence[tuple[dt.date, float, float]],
    threshold: float,
    read_at: float,
) -> list[dict[str, Any]]:
    """The days of one site's bar (``spans``: :func:`day_spans`), each with its outages (an
    outage across midnight is listed on each day it touches), as read at ``read_at``."""
    out = []
    for day, lo, hi in spans:
        key = day.isoformat()
        seconds = days.get(key)
        mine = (
            [outage_dict(o, read_at) for o in outages if o.end > lo and o.start < hi]
            if outages
            else []
        )
        out.append({"day": key, "state": day_state(seconds, threshold),
                    "availability": availability(dict(seconds)) if seconds else None,
                    "down_seconds": seconds["down"] if seconds else 0.0, "outages": mine})  # fmt: skip
    return out


def state_data(
    monitor: Monitor, progress: Mapping[str, int] | None, today: dt.date, now: float
) -> dict[str, Any]:
    """The state page: every district's and facility type's sites by verdict now, the rollout's progress per day
    (``progress``: fully functional sites per day, reads.read_progress; None: the store could
    not be read, the rollout's ``days`` are None) and the sites down now."""
    inv = monitor.inventory
    districts: dict[str, dict[str, Any]] = {}
    types: dict[str, dict[str, Any]] = {}
    down = []
    for site in inv.sites:
        st = monitor.status.get(site.id)
        verdict = st.verdict.value if st is not None else "not_judged"
        d = districts.setdefault(site.district, _district_row(inv, site.district))
        t = types.setdefault(
            site.type, {"type": site.type, "sites": 0, **dict.fromkeys(VERDICTS, 0)}
        )
        for row in (d, t):
            row["sites"] += 1
            row[verdict] += 1
        if st is not None and verdict == "down":
            down.append({**names(inv, site), **verdict_now(st)})
    rows = [districts[k] for k in sorted(districts)]
    by_type = [types[k] for k in FACILITY_TYPES if k in types]
    for d in (*rows, *by_type):
        d["share"] = d["fully_functional"] / d["sites"]
    total = sum(d["sites"] for d in rows)
    ff = sum(d["fully_functional"] for d in rows)
    down.sort(key=lambda s: (s["since"] or "", s["id"]))
    return {"page": "state", "state": inv.state, "state_hi": inv.state_hi, "generated_at": iso(now),
            "timezone": monitor_tz(monitor).key, "sites": total, "fully_functional": ff,
            "share": ff / total if total else None, "districts": rows, "types": by_type,
            "rollout": _rollout(inv, progress, today), "down_now": down}  # fmt: skip


def _district_row(inv: Inventory, name: str) -> dict[str, Any]:
    d = inv.districts.get(name)
    return {"name": name, "name_hi": d.name_hi if d else None, "sites": 0,
            **dict.fromkeys(VERDICTS, 0)}  # fmt: skip


def _rollout(
    inv: Inventory, progress: Mapping[str, int] | None, today: dt.date
) -> dict[str, Any] | None:
    r = inv.rollout
    if r is None:
        return None
    head = {"start": r.start.isoformat(), "deadline": r.deadline.isoformat(),
            "days_left": (r.deadline - today).days, "day_threshold": inv.report.day_threshold}  # fmt: skip
    if progress is None:
        return {**head, "days": None}
    late = sorted(s.commissioned for s in inv.sites if s.commissioned is not None)
    always = len(inv.sites) - len(late)  # no commissioned date: counted every day
    days = []
    day = r.start
    while day <= min(today, r.deadline):
        if day == today and day.isoformat() not in progress:
            break  # not rolled yet (netmon's first minute): left out, not shown as 0
        counted = always + bisect.bisect_right(late, day)
        days.append({"day": day.isoformat(), "sites": counted,
                     "fully_functional": progress.get(day.isoformat(), 0)})  # fmt: skip
        day += dt.timedelta(days=1)
    return {**head, "days": days}


def monitor_tz(monitor: Monitor) -> ZoneInfo:
    return monitor.rollups.tz if monitor.rollups is not None else ZoneInfo("Asia/Kolkata")


def district_sites(inventory: Inventory, name: str) -> list[Site]:
    """The sites of the district ``name`` (any case), in inventory order."""
    return [s for s in inventory.sites if s.district.lower() == name.lower()]


def bars(
    monitor: Monitor, sites: Sequence[Site], found: Mapping[str, Any], first: dt.date, now: float
) -> dict[str, list[dict[str, Any]]]:
    """Every site's bar from the store's ``found`` ``days`` and ``outages`` (reads.py), as
    of ``now``: built once per read and kept with it."""
    spans = day_spans(first, monitor_tz(monitor))
    threshold = monitor.inventory.report.day_threshold
    return {s.id: bar(found["days"].get(s.id, {}), found["outages"].get(s.id, []), spans,
                      threshold, now) for s in sites}  # fmt: skip


def availability_30d(
    days: Mapping[str, Mapping[str, Mapping[str, float]]], today: dt.date
) -> dict[str, float | None]:
    """Per site, the availability of the 30 local days up to ``today`` from its ``days``
    (reads.read_days): 1 − down / judged, as netmon.progress.read_figures has it for
    /api/v1/sites (None: nothing judged), with today as accounted now."""
    since = (today - dt.timedelta(days=AVAILABILITY_DAYS - 1)).isoformat()
    out: dict[str, float | None] = {}
    for site_id, mine in days.items():
        recent = [s for day, s in mine.items() if since <= day <= today.isoformat()]
        seen = sum(s[k] for s in recent for k in JUDGED)
        out[site_id] = 1.0 - sum(s["down"] for s in recent) / seen if seen else None
    return out


def site_row(monitor: Monitor, site: Site, reads: Mapping[str, Any]) -> dict[str, Any]:
    """One site of a district page (and the head of its own): names, verdict now, 30-day
    availability, its bar. ``reads``: ``bars`` (:func:`bars`) and ``availability``
    (:func:`availability_30d`). An outage open at the read is
    ``ongoing`` while the site is down."""
    verdict = verdict_now(monitor.status.get(site.id))
    days = reads["bars"].get(site.id, [])
    if verdict["verdict"] == "down" and days and days[-1]["outages"]:
        last = days[-1]
        days = [
            *days[:-1],
            {**last, "outages": [{**o, "ongoing": o["open"]} for o in last["outages"]]},
        ]
    return {
        **names(monitor.inventory, site),
        **verdict,
        "availability_30d": reads["availability"].get(site.id),
        "days": days,
    }


def district_data(
    monitor: Monitor, sites: Sequence[Site], reads: Mapping[str, Any], today: dt.date, now: float
) -> dict[str, Any]:
    first, _last = bar_days(today)
    rows = [site_row(monitor, s, reads) for s in sites]
    d = monitor.inventory.districts.get(sites[0].district)
    return {"page": "district", "district": sites[0].district,
            "district_hi": d.name_hi if d else None, "generated_at": iso(now),
            "timezone": monitor_tz(monitor).key, "first_day": first.isoformat(),
            "last_day": today.isoformat(), "sites": len(rows),
            "fully_functional": sum(r["verdict"] == "fully_functional" for r in rows),
            "history_unavailable": bool(reads.get("unavailable")),
            "day_threshold": monitor.inventory.report.day_threshold, "data": rows}  # fmt: skip


def site_data(
    monitor: Monitor,
    site: Site,
    reads: Mapping[str, Any],
    history: Sequence[Any],
    today: dt.date,
    now: float,
) -> dict[str, Any]:
    """The site page: its district row plus the HFR ID, devices (each with its state now),
    the verdict history (newest first) and its announced maintenance."""
    first, _last = bar_days(today)
    row = site_row(monitor, site, reads)
    sv = monitor.view(site, now)
    devices = [{"name": d.name, "role": d.role, "parent": d.parent,
                "state": device_state(site, d, sv.summaries)} for d in site.devices]  # fmt: skip
    changes = [{"verdict": c.verdict, "since": iso(c.since), "reasons": reasons(c.reasons)}
               for c in history]  # fmt: skip
    maintenance = [{"start": iso(m.start.timestamp()), "end": iso(m.end.timestamp()),
                    "reason": m.reason, "now": m.covers(now)}
                   for m in sorted(one_off(site), key=lambda m: m.start)
                   if m.end.timestamp() > now - 86400 * BAR_DAYS]  # fmt: skip
    recurring = [recurring_dict(m, now) for m in site.maintenance if isinstance(m, Recurring)]
    return {"page": "site", **row, "hfr_id": site.hfr_id, "generated_at": iso(now),
            "timezone": monitor_tz(monitor).key, "first_day": first.isoformat(),
            "last_day": today.isoformat(), "day_threshold": monitor.inventory.report.day_threshold,
            "commissioned": site.commissioned.isoformat() if site.commissioned else None,
            "devices": devices, "history": changes, "maintenance": maintenance,
            "recurring": recurring,
            "history_unavailable": bool(reads.get("unavailable"))}  # fmt: skip


def one_off(site: Site) -> list[Maintenance]:
    """The site's one-off announced windows (the recurring ones: :func:`recurring_dict`)."""
    return [m for m in site.maintenance if isinstance(m, Maintenance)]


def recurring_dict(rule: Recurring, now: float) -> dict[str, Any]:
    """A recurring maintenance rule as written (``every``, ``days``, ``start`` HH:MM in its
    ``timezone``, ``duration`` seconds, ``reason``) and its occurrence now or next
    (``next_start``, ``next_end``; None if none within 62 days: a monthly day 31 skips at
    most one month); ``now``: one covers ``now``."""
    found = rule.spans(now, now + NEXT_WITHIN)
    lo, hi = found[0] if found else (None, None)
    return {"every": rule.every, "days": list(rule.days or []), "start": rule.start,
            "duration": rule.duration, "timezone": rule.timezone, "reason": rule.reason,
            "next_start": iso(lo), "next_end": iso(hi),
            "now": lo is not None and lo <= now}  # fmt: skip
