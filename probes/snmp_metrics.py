"""The SNMP kind's Prometheus metrics, built at scrape time from its evidence.

Per SNMP-polled device (labels site, district, type, device, role; interfaces add
``interface`` and ``uplink`` ("true" for the inventory's uplink_interfaces), at most 64
interfaces per device, uplinks first):
  netmon_device_snmp_up, netmon_device_snmp_poll_duration_seconds, netmon_device_uptime_seconds,
  netmon_device_boot_time_seconds (Unix time: ``changes(...[1d])`` counts reboots),
  netmon_device_reboots_in_window, netmon_interface_oper_up, netmon_interface_admin_up,
  netmon_interface_receive_bits_per_second, netmon_interface_transmit_bits_per_second,
  netmon_interface_errors{direction}, netmon_interface_flaps_total,
  netmon_interface_receive_bytes_total, netmon_interface_transmit_bytes_total,
  netmon_interface_receive_errors_total, netmon_interface_transmit_errors_total
The four ``_total`` counters are the device's own counters as the last answered poll read them
(the profile's ``in_octets``/``out_octets``/``in_errors``/``out_errors`` columns: ifHCInOctets,
ifHCOutOctets, ifInErrors, ifOutErrors in the generic profile), not totals netmon adds up: exact,
unaffected by a netmon restart, and a device reboot shows as the counter reset that ``rate()``
and ``increase()`` handle. A 32-bit octet column (a profile without ifHC*) wraps in ~34 s at
1 Gbit/s, which ``rate()`` also takes for a reset: use the ``_bits_per_second`` gauges there
(netmon allows one wrap between polls). They hold still between polls, like every SNMP series.
Per AP a site's controllers report (labels site, district, type, controller, ap, known):
  netmon_ap_up, netmon_ap_clients      known="false": the inventory lacks this AP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from probes.base import DEVICE_LABELS, SITE_LABELS, KindSite
from probes.snmp_findings import Interface
from probes.snmp_view import ControllerView, SnmpEvidence

if TYPE_CHECKING:
    from netmon.inventory import Device, Site

MAX_INTERFACES_PER_DEVICE = 64  # bounded cardinality: uplinks first, then enabled ports
_IFACE = DEVICE_LABELS + ["interface", "uplink"]
_AP = SITE_LABELS + ["controller", "ap", "known"]


def _g(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _families() -> dict[str, Any]:
    return {
        "up": _g("netmon_device_snmp_up", "1 if the device's agent answered the last SNMP poll", DEVICE_LABELS),
        "dur": _g("netmon_device_snmp_poll_duration_seconds", "How long the last SNMP poll took", DEVICE_LABELS),
        "uptime": _g("netmon_device_uptime_seconds", "sysUpTime at the last SNMP poll", DEVICE_LABELS),
        "boot": _g("netmon_device_boot_time_seconds", "When the device last booted (poll time minus sysUpTime), Unix time", DEVICE_LABELS),
        "reboots": _g("netmon_device_reboots_in_window", "Reboots seen (sysUpTime went back) in the policy window", DEVICE_LABELS),
        "oper": _g("netmon_interface_oper_up", "1 if the interface's link is up", _IFACE),
        "admin": _g("netmon_interface_admin_up", "1 if the interface is enabled", _IFACE),
        "rx": _g("netmon_interface_receive_bits_per_second", "Receive rate between the last two polls", _IFACE),
        "tx": _g("netmon_interface_transmit_bits_per_second", "Transmit rate between the last two polls", _IFACE),
        "err": _g("netmon_interface_errors", "Errors between the last two polls", _IFACE + ["direction"]),
        "flaps": CounterMetricFamily("netmon_interface_flaps", "Link state changes seen", labels=_IFACE),
        "rxb": CounterMetricFamily("netmon_interface_receive_bytes", "Octets received, the device's counter (ifHCInOctets)", labels=_IFACE),
        "txb": CounterMetricFamily("netmon_interface_transmit_bytes", "Octets sent, the device's counter (ifHCOutOctets)", labels=_IFACE),
        "rxe": CounterMetricFamily("netmon_interface_receive_errors", "Inbound errors, the device's counter (ifInErrors)", labels=_IFACE),
        "txe": CounterMetricFamily("netmon_interface_transmit_errors", "Outbound errors, the device's counter (ifOutErrors)", labels=_IFACE),
        "ap": _g("netmon_ap_up", "1 if the controller reports the AP associated", _AP),
        "clients": _g("netmon_ap_clients", "Clients associated to the AP", _AP),
    }  # fmt: skip


def snmp_metrics(sites: Iterable[KindSite], now: float) -> Iterator[Metric]:
    f = _families()
    for ks in sites:
        site = ks.site
        for name, ev in ks.evidence.items():
            dev = site.device(name)
            if dev is not None and isinstance(ev, SnmpEvidence):
                _device(f, [site.id, site.district, site.type, dev.name, dev.role], dev, ev, now)
        if isinstance(ks.view, ControllerView):
            _aps(f, site, ks.view)
    yield from f.values()


def _device(
    f: dict[str, Any], labels: list[str], dev: Device, ev: SnmpEvidence, now: float
) -> None:
    last, found = ev.polls.last, ev.findings
    if last is None:
        return
    f["up"].add_metric(labels, float(last.ok))
    f["reboots"].add_metric(labels, float(len(ev.reboots_in_window(now))))
    if ev.last_ok is None or found is None:
        return
    f["dur"].add_metric(labels, float(found.poll_seconds or ev.last_ok.duration))
    if found.sys_uptime_seconds is not None:
        f["uptime"].add_metric(labels, float(found.sys_uptime_seconds))
        boot = ev.last_ok.started_at - float(found.sys_uptime_seconds)
        f["boot"].add_metric(labels, round(boot))  # whole seconds: steady between polls
    uplinks = set(dev.snmp.uplink_interfaces) if dev.snmp else set()
    for i in exported_interfaces(uplinks, found.interfaces or ()):
        il = labels + [str(i.name or i.index), "true" if i.name in uplinks else "false"]
        for key, value in (
            ("oper", i.oper_up),
            ("admin", i.admin_up),
            ("rx", i.in_bps),
            ("tx", i.out_bps),
        ):
            if value is not None:
                f[key].add_metric(il, float(value))
        for direction, errors in (("in", i.in_errors), ("out", i.out_errors)):
            if errors is not None:
                f["err"].add_metric(il + [direction], float(errors))
        f["flaps"].add_metric(il, float(i.flaps or 0))
        for key, count in (("rxb", i.in_octets_counter), ("txb", i.out_octets_counter),
                           ("rxe", i.in_errors_counter), ("txe", i.out_errors_counter)):  # fmt: skip
            if count is not None:
                f[key].add_metric(il, float(count))


def exported_interfaces(uplinks: set[str], interfaces: Iterable[Interface]) -> list[Interface]:
    rows = list(interfaces)
    first = [i for i in rows if i.name in uplinks]
    rest = [i for i in rows if i.name not in uplinks and i.admin_up]
    return (first + rest)[:MAX_INTERFACES_PER_DEVICE]


def _aps(f: dict[str, Any], site: Site, view: ControllerView) -> None:
    base = [site.id, site.district, site.type]
    for ap, (up, _ts, ctrl) in view.up.items():
        f["ap"].add_metric(base + [ctrl, ap, "true"], float(up))
        if ap in view.clients:
            f["clients"].add_metric(base + [ctrl, ap, "true"], float(view.clients[ap]))
    for row in view.unknown_aps:
        labels = base + [row.controller, str(row.ap.name or row.ap.mac), "false"]
        if row.ap.up is not None:
            f["ap"].add_metric(labels, float(row.ap.up))
        if row.ap.clients is not None:
            f["clients"].add_metric(labels, float(row.ap.clients))
