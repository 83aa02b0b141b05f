"""The status board for district officials: server-rendered pages at /status, in Hindi and
English, served by netmon's own app (no extra service, nothing loaded from elsewhere).

    GET /status                      % of sites fully functional now by district (table and bar
                                     chart), the rollout's progress line, days left, sites down now
    GET /status/district/{name}      every site: verdict, reasons, since, 30-day availability,
                                     90-day bar (each day's outages with start, end and reason)
    GET /status/site/{site_id}       the bar, devices, verdict history, maintenance, HFR ID
    ?format=json                     each page's data (the dict its template words)
    ?lang=hi|en                      the language, remembered in a cookie

The seam, one concern per module:

    catalogue.py   messages.yaml (every string in en and hi), numbers, dates, reasons in words
    reads.py       what the pages read from the store (site_day rollups, outages), kept a minute
    data.py        each page's data as a plain dict (the JSON twin)
    render.py      language choice, Jinja2 templates (templates/), ETag and Cache-Control
    routes.py      the routes; static/ holds the stylesheet, a small script and the font
"""

from netmon.status.routes import router

__all__ = ["router"]
