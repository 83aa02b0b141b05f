"""deploy/prometheus/: the configs and rules pass promtool, and every alert is unit-tested."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

RUNBOOK_BASE = "https://github.com/netmon/netmon/blob/main/docs/runbooks.md#"
SITE_LABELS = {"site", "district", "type"}


def promtool(which: Callable[..., str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [which("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


# prometheus.yml, and its variants: remote-writing to VictoriaMetrics, and the sharded scrape.
CONFIGS = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "deploy/prometheus").glob("*.yml")
)


def test_the_config_and_its_variants() -> None:
    assert CONFIGS == [
        "prometheus-shard-district.yml",
        "prometheus-shard-hashmod.yml",
        "prometheus-victoriametrics.yml",
        "prometheus.yml",
    ]


@pytest.mark.parametrize("config", CONFIGS)
def test_promtool_check_config(which: Callable[..., str], repo: Path, config: str) -> None:
    out = promtool(which, "check", "config", config, cwd=repo / "deploy/prometheus")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_check_rules(which: Callable[..., str], repo: Path) -> None:
    files = sorted(str(p) for p in (repo / "deploy/prometheus/rules").glob("*.yml"))
    assert files
    out = promtool(which, "check", "rules", *files, cwd=repo)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules(which: Callable[..., str], repo: Path) -> None:
    files = sorted(str(p.name) for p in (repo / "deploy/prometheus/tests").glob("*.yml"))
    assert files
    out = promtool(which, "test", "rules", *files, cwd=repo / "deploy/prometheus/tests")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files), out.stdout


def test_scrape_config(repo: Path) -> None:
    conf = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in conf["scrape_configs"] if j["job_name"] == "netmon")
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert job["scrape_interval"] == "30s"
    assert seconds(job["scrape_timeout"]) <= seconds(job["scrape_interval"])
    rule_files = [
        p for pattern in conf["rule_files"] for p in (repo / "deploy/prometheus").glob(pattern)
    ]
    assert sorted(rule_files) == sorted((repo / "deploy/prometheus/rules").glob("*.yml"))


def _alert_cases(repo: Path) -> dict[str, list[list[tuple[float, bool]]]]:
    """For each alert: per unit-test group, the (eval time, fired?) cases in time order."""
    cases: dict[str, list[list[tuple[float, bool]]]] = {}
    for path in sorted((repo / "deploy/prometheus/tests").glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("tests", []):
            per_alert: dict[str, list[tuple[float, bool]]] = {}
            for case in group.get("alert_rule_test", []):
                per_alert.setdefault(case["alertname"], []).append(
                    (seconds(case["eval_time"]), bool(case.get("exp_alerts")))
                )
            for name, evals in per_alert.items():
                cases.setdefault(name, []).append(sorted(evals))
    return cases


def test_every_alert_fires_does_not_fire_and_resolves_in_unit_tests(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    cases = _alert_cases(repo)
    problems = []
    for rule in alert_rules:
        name = rule["alert"]
        groups = cases.get(name, [])
        fires = any(f for g in groups for _, f in g)
        # Not firing: a group where it never fires, or a quiet evaluation before the first firing.
        quiet = any(
            not f
            for g in groups
            for t, f in g
            if t < min([t2 for t2, f2 in g if f2], default=float("inf"))
        )
        resolves = any(not f and any(f2 and t2 < t for t2, f2 in g) for g in groups for t, f in g)
        missing = [
            what
            for what, ok in (("fires", fires), ("does not fire", quiet), ("resolves", resolves))
            if not ok
        ]
        if missing:
            problems.append(f"{name}: no unit test where it {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_site_alerts_fire_with_site_district_type(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    site_alerts = {r["alert"] for r in alert_rules if r["labels"].get("component") != "netmon"}
    seen: set[str] = set()
    for path in sorted((repo / "deploy/prometheus/tests").glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("tests", []):
            for case in group.get("alert_rule_test", []):
                if case["alertname"] not in site_alerts:
                    continue
                for alert in case.get("exp_alerts") or []:
                    assert set(alert["exp_labels"]) >= SITE_LABELS, (
                        case["alertname"],
                        alert["exp_labels"],
                    )
                    seen.add(case["alertname"])
    assert seen == site_alerts


def test_alerts_have_severity_summary_and_runbook(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    runbook = (repo / "docs/runbooks.md").read_text()
    anchors = {_github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", runbook, flags=re.M)}
    names = [r["alert"] for r in alert_rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alert_rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        summary = rule["annotations"]["summary"]
        if rule["labels"].get("component") == "netmon":
            assert "$labels.instance" in summary, name
        else:
            assert "$labels.site" in summary and "$labels.district" in summary, name
        url = rule["annotations"]["runbook_url"]
        assert url == RUNBOOK_BASE + name.lower(), name
        assert name.lower() in anchors, f"docs/runbooks.md has no section for {name}"


def test_rules_use_only_metrics_netmon_exports(
    repo: Path,
    exported_metrics: set[str],
    awaited_metrics: dict[str, str],
    metric_names: Callable[[str], set[str]],
) -> None:
    used: dict[str, set[str]] = {}
    for path in sorted((repo / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in metric_names(rule["expr"]):
                    used.setdefault(name, set()).add(rule.get("alert") or rule["record"])
    unknown = {
        m: sorted(r)
        for m, r in used.items()
        if m not in exported_metrics and m not in awaited_metrics
    }
    assert not unknown, f"rules use metrics netmon does not export: {unknown}"


def test_awaited_metrics_are_marked_in_the_rules(
    repo: Path, exported_metrics: set[str], awaited_metrics: dict[str, str]
) -> None:
    text = (repo / "deploy/prometheus/rules/netmon-alerts.yml").read_text()
    for metric in awaited_metrics:
        if metric in exported_metrics:
            pytest.fail(
                f"netmon now exports {metric}: drop it from AWAITED_METRICS and the WAITING note"
            )
        assert "WAITING FOR THE SNMP ISSUE" in text and metric in text


def test_recording_rule_names_follow_level_metric_operation(recorded_names: set[str]) -> None:
    bad = [
        n for n in recorded_names if not re.fullmatch(r"[a-z_]+:netmon_[a-z0-9_]+:[a-z0-9_]+", n)
    ]
    assert not bad
    for window in ("avg1h", "avg24h", "avg30d"):
        assert f"site:netmon_site_fully_functional:{window}" in recorded_names
        assert f"site:netmon_uplink_up:{window}" in recorded_names
    for level in ("district", "type", "state"):
        for what in (
            "netmon_sites:count",
            "netmon_sites_fully_functional:sum",
            "netmon_sites_fully_functional:ratio",
        ):
            assert f"{level}:{what}" in recorded_names


def _github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _criterion_labels(text: str) -> set[str]:
    """Criterion label values named in a rule, dashboard or promtool test file."""
    found = set(re.findall(r'criterion\\?="([a-z_]+)\\?"', text))
    return found | set(re.findall(r"^\s*criterion: ([a-z_]+)\s*$", text, re.MULTILINE))


def test_rules_name_real_policy_thresholds_and_verdict_criteria(repo: Path) -> None:
    """A typo in threshold="..." or criterion="..." would make a rule silently match nothing."""
    from netmon.inventory import Policy
    from netmon.verdict import Criterion

    thresholds = set(Policy.model_fields)
    criteria = {c.value for c in Criterion}
    texts = [p.read_text() for p in sorted((repo / "deploy/prometheus/rules").glob("*.yml"))]
    texts += [p.read_text() for p in sorted((repo / "deploy/grafana/dashboards").glob("*.json"))]
    tests = [p.read_text() for p in sorted((repo / "deploy/prometheus/tests").glob("*.yml"))]
    used_t = {t for text in texts for t in re.findall(r'threshold\\?="([a-z_]+)\\?"', text)}
    used_c = {c for text in texts + tests for c in _criterion_labels(text)}
    assert {"uplink_max_loss", "ap_min_up_ratio"} <= used_t
    assert {"uplink_interface_down", "uplink_loss", "ap_loss", "device_rebooted"} <= used_c
    assert used_t <= thresholds, used_t - thresholds
    assert used_c <= criteria, used_c - criteria
