"""Bearer tokens for the API's writes (and, when reads are closed, its reads), and the audit log.

A token is ``nmt_`` + 43 URL-safe characters (``secrets.token_urlsafe(32)``: 256 random bits),
printed once by ``netmon token create`` and stored only as its SHA-256 (hex); a presented
token is hashed and compared with :func:`hmac.compare_digest`. A revoked token stays listed
(``revoked_at``) and is refused. Scopes:

    maintenance:write  POST and DELETE /api/v1/sites/{id}/maintenance
    audit:read         GET /api/v1/audit
    read               every other GET /api/v1/* when the inventory's api.read_requires_token
                       (or NETMON_API_READ_REQUIRES_TOKEN, which overrides it) is true
    poller             a remote poller's calls, /api/v1/pollers/* (netmon.fleet): the token's
                       name is the poller's name

Every write (over the API, and ``netmon token create``/``revoke``) appends one
:class:`AuditRow`: who (the token's name), what (method, path, action, detail JSON), when.
No token value is ever logged, stored, listed or written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Field, Session, SQLModel, col, select

from netmon.errors import ConfigError, ConfigProblem
from netmon.store import Store

PREFIX = "nmt_"
SCOPES = ("maintenance:write", "audit:read", "read", "poller")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOUCH_EVERY = 60.0  # seconds: last_used_at is written at most this often per token
CLI = "netmon token"  # where a CLI error is said to come from (``netmon token: --name: ...``)
CLI_NAME = "cli"  # who the audit log says wrote, for the command line (no token may be named so)


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    scopes: str = Field(max_length=200)  # space-separated, in SCOPES order
    token_sha256: str = Field(max_length=64, unique=True)  # hex digest; never the token
    created_at: float  # Unix seconds
    revoked_at: float | None = None
    last_used_at: float | None = None


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)  # Unix seconds
    token_name: str = Field(max_length=64)  # who: the token's name ("cli" for the command line)
    method: str = Field(max_length=16)  # POST, DELETE; CLI for the command line
    path: str = Field(max_length=500)
    action: str = Field(max_length=64)  # e.g. maintenance.create
    detail: str = ""  # JSON object: what was written


@dataclass(frozen=True, slots=True)
class Caller:
    """Who presented a valid token: its name and scopes."""

    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: everything but its hash."""

    name: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class Recent:
    """Callers accepted lately, by token digest: while the database cannot be read, a token it
    accepted within ``keep`` seconds is still accepted, so closed reads are served from memory
    as open ones are. Never asked while the database answers: a revocation counts at once."""

    def __init__(self, keep: float = 600.0) -> None:
        self.keep = keep
        self._seen: dict[str, tuple[Caller, float]] = {}  # one per valid token: bounded

    def remember(self, token: str, caller: Caller, at: float) -> None:
        self._seen[digest(token)] = (caller, at)

    def forget(self, token: str) -> None:
        """The database refused it (revoked): never recalled again."""
        self._seen.pop(digest(token), None)

    def recall(self, token: str, at: float) -> Caller | None:
        found = self._seen.get(digest(token))
        return found[0] if found is not None and at - found[1] <= self.keep else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX) and 20 <= len(value) <= 200


def _problem(field: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(CLI, None, field, message)])


def checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes in :data:`SCOPES` order; an unknown one (or none) is a ConfigError."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise _problem("--scope", f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    if not given:
        raise _problem("--scope", f"give at least one scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in given)


def create_token(store: Store, name: str, scopes: Iterable[str], now: float | None = None) -> str:
    """A new token named ``name`` with ``scopes``: stored hashed, returned (shown once)."""
    if not NAME.match(name):
        raise _problem("--name", "a name is 1-64 letters, digits, '.', '_' or '-'")
    if name == CLI_NAME:
        raise _problem("--name", f"{CLI_NAME!r} names the command line in the audit log")
    wanted = checked_scopes(scopes)
    token = PREFIX + secrets.token_urlsafe(32)
    at = time.time() if now is None else now
    with store.session("writing", f"token {name!r}") as s:
        if s.exec(select(ApiTokenRow).where(ApiTokenRow.name == name)).first() is not None:
            raise _problem("--name", f"a token named {name!r} exists already")
        s.add(ApiTokenRow(name=name, scopes=" ".join(wanted), token_sha256=digest(token),
                          created_at=at))  # fmt: skip
        _audit(s, CLI_NAME, "CLI", f"{CLI} create", "token.create",
               {"name": name, "scopes": list(wanted)}, at)  # fmt: skip
        s.commit()
    return token


def revoke_token(store: Store, name: str, now: float | None = None) -> bool:
    """Revoke the token named ``name`` (False: it was revoked already); unknown: ConfigError."""
    at = time.time() if now is None else now
    with store.session("writing", f"token {name!r}") as s:
        row = s.exec(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
        if row is None:
            raise _problem("NAME", f"no token named {name!r}")
        if row.revoked_at is not None:
            return False
        row.revoked_at = at
        s.add(row)
        _audit(s, CLI_NAME, "CLI", f"{CLI} revoke", "token.revoke", {"name": name}, at)
        s.commit()
    return True


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.session("reading", "tokens") as s:
        rows = s.exec(select(ApiTokenRow).order_by(col(ApiTokenRow.created_at))).all()
    return [TokenInfo(r.name, tuple(r.scopes.split()), r.created_at, r.last_used_at, r.revoked_at)
            for r in rows]  # fmt: skip


def authenticate(store: Store, token: str, now: float | None = None) -> Caller | None:
    """The caller behind ``token``, or None for an unknown or revoked one."""
    if not looks_like_token(token):
        return None
    wanted = digest(token)
    at = time.time() if now is None else now
    with store.session("reading", "tokens") as s:
        row = s.exec(select(ApiTokenRow).where(ApiTokenRow.token_sha256 == wanted)).first()
        if row is None or not hmac.compare_digest(row.token_sha256, wanted):
            return None
        if row.revoked_at is not None:
            return None
        caller = Caller(row.name, frozenset(row.scopes.split()))
        if row.last_used_at is None or at - row.last_used_at >= TOUCH_EVERY:
            row.last_used_at = at
            s.add(row)
            s.commit()
    return caller


def _audit(s: Session, who: str, method: str, path: str, action: str,
           detail: dict[str, Any], at: float) -> None:  # fmt: skip
    s.add(AuditRow(at=at, token_name=who, method=method, path=path, action=action,
                   detail=json.dumps(detail, separators=(",", ":"), default=str)))  # fmt: skip


def audit(s: Session, caller: Caller, method: str, path: str, action: str,
          detail: dict[str, Any], at: float | None = None) -> None:  # fmt: skip
    """Add the audit row of a write to ``s`` (committed with the write itself)."""
    _audit(s, caller.name, method, path, action, detail, time.time() if at is None else at)


def audit_log(store: Store, limit: int = 100, before: int | None = None) -> Sequence[AuditRow]:
    """The newest audit rows first (``before``: only rows with a smaller id)."""
    query = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(limit)
    if before is not None:
        query = query.where(col(AuditRow.id) < before)
    with store.session("reading", "the audit log") as s:
        return s.exec(query).all()
