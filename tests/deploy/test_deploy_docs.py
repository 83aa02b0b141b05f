"""docs/: the runbook has one section per alert with what the NOC needs, and the deployment
guide covers what the NOC asks about first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest


def sections(text: str) -> dict[str, str]:
    """Level-2 sections by heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_runbook_has_a_complete_section_per_alert(
    repo: Path, alert_rules: list[dict[str, Any]]
) -> None:
    found = sections((repo / "docs/runbooks.md").read_text())
    for rule in alert_rules:
        name = rule["alert"]
        assert name in found, f"docs/runbooks.md: no '## {name}' section"
        body = found[name].lower()
        for needed in ("what it means", "first checks", "who to call", "silence"):
            assert needed in body, f"runbook {name}: no '{needed}'"
        if rule["labels"].get("component") != "netmon":
            assert "bsnl" in body and "site it" in body, (
                f"runbook {name}: name the BSNL circuit desk and site IT"
            )


def test_runbook_explains_silencing_for_announced_maintenance(repo: Path) -> None:
    text = (repo / "docs/runbooks.md").read_text()
    assert "amtool silence add" in text
    assert "maintenance" in text.lower()


@pytest.mark.parametrize(
    "needed",
    [
        "NETMON_DATABASE_URL",
        "CAP_NET_RAW",
        "ping_group_range",
        "promtool",
        "amtool",
        "sizing",
        "deploy/systemd/netmon.service",
        "deploy/compose/compose.yaml",
        "grafana",
        "retention",
        "victoria-metrics",
        "remote_write",
        "deploy/compose/compose.victoriametrics.yaml",
        "hashmod",
        "prometheus-shard-district.yml",
    ],
)
def test_deploy_guide_covers(repo: Path, needed: str) -> None:
    assert needed.lower() in (repo / "docs/deploy.md").read_text().lower()
