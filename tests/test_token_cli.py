"""``netmon token create | list | revoke`` on SQLite and PostgreSQL, and a real ``netmon run``
that takes a window posted with a token made by the command, never logging the token."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from netmon.auth import authenticate, digest
from netmon.cli import main
from netmon.store import Store
from tests.netmon_process import ROOT, running_netmon, stop

PORT = 19142  # this worktree's range (19100-19199)
INVENTORY = """
state: Jharkhand
defaults: {interval: 1s, count: 1, timeout: 500ms, spacing: 100ms}
sites:
  - id: chc-token
    name: Community Health Centre, Token
    district: Ranchi
    type: chc
    devices:
      - {name: wan-1, role: wan, address: 127.78.1.1}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_revoke(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--database-url", database_url)
    code, out, err = run(capsys, "token", "create", "--name", "tracker",
                         "--scope", "maintenance:write", "--scope", "audit:read", *db)  # fmt: skip
    assert code == 0, err
    token = out.strip()
    assert out == token + "\n" and token.startswith("nmt_") and len(token) == 4 + 43
    assert token not in err and "shown only this once" in err
    store = Store(database_url)
    caller = authenticate(store, token)
    assert caller is not None and caller.scopes == {"maintenance:write", "audit:read"}
    code, out, err = run(capsys, "token", "list", *db)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SCOPES", "CREATED", "LAST", "USED", "REVOKED"]
    assert row.split()[:2] == ["tracker", "maintenance:write,audit:read"]
    assert row.split()[3] != "-" and row.split()[4] == "-"  # used once (above), not revoked
    assert token not in out and digest(token) not in out
    assert run(capsys, "token", "revoke", "tracker", *db)[0] == 0
    assert authenticate(store, token) is None
    assert run(capsys, "token", "list", *db)[1].splitlines()[1].split()[-1] != "-"
    store.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--name", "tracker", "--scope", "read"],
         "netmon token: --name: a token named 'tracker' exists already"),
        (["create", "--name", "x", "--scope", "write:everything"],
         "netmon token: --scope: unknown scope 'write:everything' (known: maintenance:write, "
         "audit:read, read, poller)"),
        (["create", "--name", "x"], "netmon token: --scope: give at least one scope"),
        (["create", "--name", "no spaces", "--scope", "read"], "netmon token: --name: a name is"),
        (["revoke", "nobody"], "netmon token: NAME: no token named 'nobody'"),
        (["create", "--name", "cli", "--scope", "read"],
         "netmon token: --name: 'cli' names the command line in the audit log"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_78(
    database_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = ["--database-url", database_url]
    assert run(capsys, "token", "create", "--name", "tracker", "--scope", "read", *db)[0] == 0
    code, out, err = run(capsys, "token", *argv, *db)
    assert code == 78 and out == ""
    assert err.startswith(message) and len(err.splitlines()) == 1, err


def test_run_takes_a_window_posted_with_a_cli_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETMON_")}
    env["NETMON_DATA_DIR"] = str(tmp_path)  # the same database `netmon run` uses by default
    made = subprocess.run(
        [sys.executable, "-m", "netmon.cli", "token", "create", "--name", "tracker",
         "--scope", "maintenance:write"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    now = datetime.now(UTC)
    body = {"start": (now - timedelta(minutes=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(), "reason": "BSNL splicing"}  # fmt: skip
    with running_netmon(tmp_path, INVENTORY, port=PORT) as (port, proc):
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/api/v1/sites/chc-token/maintenance"
        assert httpx.post(url, json=body, timeout=10).status_code == 401
        resp = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 201, resp.text
        site = httpx.get(f"{base}/api/v1/sites/chc-token", timeout=10).json()
        assert site["maintenance"] == "BSNL splicing"
        assert stop(proc) == 0
    # a restart reads the window back from the database
    with running_netmon(tmp_path, INVENTORY, port=PORT) as (port, proc):
        listed = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/sites/chc-token/maintenance", timeout=10
        )
        assert [w["source"] for w in listed.json()["data"]] == ["api"]
        site = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites/chc-token", timeout=10).json()
        assert site["maintenance"] == "BSNL splicing"
        assert stop(proc) == 0
    log = (tmp_path / "netmon.log").read_text()
    assert "refused" in log and "maintenance windows from the API" in log
    assert token not in log and token[4:20] not in log
