"""When a site's judgement can next change with no new result: the incremental judge's clock.

:func:`judge` reads no clock; time reaches it only through the device summaries and kind
facts, taken at ``now``. Those change by time alone at discrete boundaries their evidence
announces (``next_boundary``: a result, outage or reboot leaving the window, the oldest
outage reaching the window's start), with one exception: ``DeviceSummary.longest_outage``
moves with the clock while an outage goes on or the oldest one is cut by the window's start.
Of the rules only ``uplink_outage`` reads it, on probed uplinks:

* an uplink over ``max_outage`` whose longest outage moves: its reason's figure moves with
  the clock, so the site is re-judged at every evaluation while it lasts;
* an ongoing uplink outage under the limit: it crosses ``max_outage`` at its start plus the
  limit (the site's next re-judge, ``BOUNDARY_MARGIN`` early);
* a cut oldest outage under the limit only shrinks: nothing to schedule.

``no_recent_data`` reads the clock too: its answer changes when an uplink's silence reaches
``max_silence`` and when announced maintenance begins or ends (``silence_boundary``).

A rule that reads another moving figure must extend :func:`steady_until` (the property test
``tests/test_incremental_judge.py`` compares the incremental judge with a full one).
"""

from __future__ import annotations

from collections.abc import Mapping

from netmon.inventory import Policy, Site
from netmon.verdict.context import uplinks
from netmon.verdict.rules.no_recent_data import silence_boundary
from netmon.window import BOUNDARY_MARGIN, DeviceSummary


def steady_until(
    site: Site, policy: Policy, seen: Mapping[str, DeviceSummary], now: float
) -> float:
    """The time until which ``judge`` gives the same judgement from these summaries, as long
    as no result is folded and no evidence boundary passes; ``now`` or earlier: every time."""
    due = silence_boundary(site, policy.max_silence, seen, now)
    limit = policy.max_outage
    for dev in uplinks(site):
        s = seen.get(dev.name)
        if s is None or not s.probes or (s.ongoing_since is None and not s.clipped):
            continue
        if s.longest_outage > limit:
            return now  # the reason's measured length moves with the clock
        if s.ongoing_since is not None:
            due = min(due, s.ongoing_since + limit - BOUNDARY_MARGIN)
    return due
