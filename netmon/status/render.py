"""Pages from data: the language a request asks for, the Jinja2 templates, and responses with
an ``ETag`` (a hash of the body: a repeat request with ``If-None-Match`` gets 304) and a short
``Cache-Control``.

Language: ``?lang=hi|en`` (remembered in the ``netmon_lang`` cookie for a year), else the
cookie, else Hindi when the browser's ``Accept-Language`` puts ``hi`` first, else English.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import Response

from netmon.status.catalogue import LANGS, Lang, Words, catalogue

COOKIE = "netmon_lang"
CACHE_CONTROL = "public, max-age=30"  # the board's data moves each minute at most
VARY = "Cookie, Accept-Language"


def chosen_lang(request: Request) -> tuple[Lang, bool]:
    """The page's language, and whether it came from ``?lang=`` (to be remembered)."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked, True
    kept = request.cookies.get(COOKIE)
    if kept in LANGS:
        return kept, False
    first = request.headers.get("accept-language", "").split(",")[0].strip().lower()
    return ("hi" if first.startswith("hi") else "en"), False


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("netmon.status", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )  # fmt: skip
    env.filters["moment"] = _moment
    env.globals["chart"] = progress_chart
    env.globals["runs"] = runs
    return env


def precompile() -> None:
    """Compile every template and read the catalogue now (~0.1 s of CPU), so that the first
    page after netmon starts does not pay for it (routes.py calls it on import)."""
    env = environment()
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    catalogue()


def runs(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A bar's days as runs: consecutive days without outages and with the same state and
    availability (to 0.1 %) become one run (drawn as one cell N days wide, ticked per day);
    a day with outages is a run of its own with ``day`` (its popup; ``early``: in the older half
    of the bar, so its popup opens rightwards)."""
    out: list[dict[str, Any]] = []
    for k, day in enumerate(days):
        a = day["availability"]
        key = (day["state"], None if a is None else round(a * 1000))
        last = out[-1] if out else None
        if not day["outages"] and last is not None and last["key"] == key and not last["day"]:
            last["n"] += 1
            last["last"] = day["day"]
            continue
        out.append({"key": key, "state": day["state"], "availability": a, "n": 1, "early": 2 * k < len(days),
                    "first": day["day"], "last": day["day"], "day": day if day["outages"] else None})  # fmt: skip
    return out


def progress_chart(rollout: dict[str, Any], width: int = 640, height: int = 220) -> dict[str, Any]:
    """The inline SVG's geometry: x from the rollout's start to its deadline, y from 0 to the
    most sites counted; ``points`` the fully functional sites per day, ``counted`` the sites
    counted per day (the target), ``last`` the latest day."""
    left, right, top, bottom = 48, width - 12, 12, height - 28
    start = dt.date.fromisoformat(rollout["start"])
    span = max((dt.date.fromisoformat(rollout["deadline"]) - start).days, 1)
    days = rollout["days"]
    most = max((d["sites"] for d in days), default=0) or 1

    def xy(day: str, n: int) -> tuple[float, float]:
        x = left + (right - left) * (dt.date.fromisoformat(day) - start).days / span
        return round(x, 1), round(bottom - (bottom - top) * n / most, 1)

    dots = [xy(d["day"], d["fully_functional"]) for d in days]
    counted = [xy(d["day"], d["sites"]) for d in days]
    return {"width": width, "height": height, "left": left, "right": right, "top": top,
            "bottom": bottom, "max": most, "dots": dots if len(dots) <= 120 else [],
            "points": " ".join(f"{x},{y}" for x, y in dots),
            "counted": " ".join(f"{x},{y}" for x, y in counted),
            "last": days[-1] if days else None}  # fmt: skip


def _moment(value: str | None) -> float | None:
    """An ISO 8601 time of the data as Unix seconds (for Words.when/time)."""
    return None if value is None else dt.datetime.fromisoformat(value).timestamp()


def page(template: str, data: dict[str, Any], words: Words, **extra: Any) -> str:
    return environment().get_template(template).render(d=data, w=words, **extra)


def respond(
    request: Request, body: bytes, media_type: str, lang: Lang | None, remember: bool,
    status: int = 200,
) -> Response:  # fmt: skip
    """``body`` with its ETag and caching headers; 304 when the client has it already."""
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if lang is not None:
        headers["Content-Language"] = lang
    wanted = request.headers.get("if-none-match", "")
    if status == 200 and tag in (t.strip() for t in wanted.split(",")):
        response = Response(status_code=304, headers=headers)
    else:
        response = Response(body, status_code=status, media_type=media_type, headers=headers)
    if remember and lang is not None:
        response.set_cookie(COOKIE, lang, max_age=365 * 86400, path="/status", samesite="lax")
    return response


def json_body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
