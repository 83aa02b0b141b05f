"""The verdict rules, in the order they are judged (a settling rule ends the judgement).

A new criterion is one member of :class:`netmon.verdict.criteria.Criterion` (with its
metadata), one rule file here, and one line below.
"""

from __future__ import annotations

from netmon.verdict.rule import Rule
from netmon.verdict.rules.ap_loss import ApLoss
from netmon.verdict.rules.ap_up_ratio import ApUpRatio
from netmon.verdict.rules.flapping import Flapping
from netmon.verdict.rules.http import HttpChecks
from netmon.verdict.rules.never_seen import NeverSeen
from netmon.verdict.rules.no_ap_up import NoApUp
from netmon.verdict.rules.no_data import NoData
from netmon.verdict.rules.no_devices import NoDevices
from netmon.verdict.rules.no_poller import NoPoller
from netmon.verdict.rules.no_recent_data import NoRecentData
from netmon.verdict.rules.outages import Outages
from netmon.verdict.rules.reboots import Reboots
from netmon.verdict.rules.small_site_aps import SmallSiteApsDown
from netmon.verdict.rules.snmp_no_answer import SnmpNoAnswer
from netmon.verdict.rules.uplink_availability import UplinkAvailability
from netmon.verdict.rules.uplink_interfaces import UplinkInterfaces
from netmon.verdict.rules.uplink_loss import UplinkLoss
from netmon.verdict.rules.uplink_outage import UplinkOutage
from netmon.verdict.rules.uplink_rtt import UplinkRttP95

RULES: tuple[Rule, ...] = (
    NoDevices(),  # settles not_installed
    NoPoller(),  # settles unknown
    NoData(),  # settles unknown
    NoRecentData(),  # settles unknown
    NeverSeen(),  # settles not_installed
    Outages(),  # settles down when every uplink is down
    NoApUp(),  # settles down
    UplinkAvailability(),
    UplinkLoss(),
    UplinkRttP95(),
    UplinkOutage(),
    ApUpRatio(),
    SmallSiteApsDown(),
    ApLoss(),
    Flapping(),
    Reboots(),
    UplinkInterfaces(),
    SnmpNoAnswer(),
    HttpChecks(),
)

__all__ = ["RULES", "Rule"]
