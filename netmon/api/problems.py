"""Every API error as an RFC 9457 problem: ``application/problem+json``.

    {"type": "urn:netmon:problem:not_found", "title": "Not found", "status": 404,
     "detail": "no site with id 'x'", "instance": "/api/v1/sites/x", "error": "not_found"}

``type`` names the problem (an identifier, not a link: netmon runs on closed networks);
``error`` repeats its short code for clients written against the old ``{"error": ...}`` body.
A 422 adds ``errors``: one ``{field, message}`` per invalid request parameter.

    code                status  raised by
    unauthorized        401     no bearer token, or an unknown or revoked one
                                (``WWW-Authenticate: Bearer``; netmon.auth)
    forbidden           403     a valid token without the scope the request needs
    not_found           404     an unknown site, device, maintenance window or URL
    method_not_allowed  405     a method the URL does not serve (``Allow`` says which do)
    conflict            409     a change the resource refuses (an inventory window deleted)
    invalid_request     422     request validation (query, path or body)
    loading             503     the monitor is refilling its windows (``Retry-After: 5``)
    store_unavailable   503     the database cannot be read (netmon.errors.StoreError; ``Retry-After: 10``)
    internal_error      500     a bug: the body says nothing more, the log has the traceback
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from netmon.errors import NetmonError, StoreError

log = logging.getLogger("netmon.api")
MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:netmon:problem:"


class Problem(BaseModel):
    """An RFC 9457 problem detail, with netmon's short ``error`` code."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    error: str


class FieldProblem(BaseModel):
    field: str  # where the bad value was: "query.limit", "path.site_id"
    message: str


class ValidationProblem(Problem):
    errors: list[FieldProblem]


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


class ApiProblem(NetmonError):
    """An error the API answers as a problem (raised by routes and dependencies)."""

    status = 500
    code = "internal_error"
    title = "Internal error"
    headers: Mapping[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiProblem):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(ApiProblem):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="netmon"'}


class Forbidden(ApiProblem):
    status = 403
    code = "forbidden"
    title = "Forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this request needs a token with the scope {scope!r}")
        self.headers = {
            "WWW-Authenticate": f'Bearer realm="netmon", error="insufficient_scope", scope="{scope}"'
        }


class Conflict(ApiProblem):
    status = 409
    code = "conflict"
    title = "Conflict"


class Loading(ApiProblem):
    """The monitor is still refilling its windows from the store (start-up)."""

    status = 503
    code = "loading"
    title = "Still loading"
    headers = {"Retry-After": "5"}

    def __init__(self) -> None:
        super().__init__(
            "netmon is refilling its verdict windows from the store; try again shortly"
        )


def problem(status: int, code: str, title: str, detail: str, request: Request) -> Problem:
    return Problem(type=TYPE_PREFIX + code, title=title, status=status, detail=detail,
                   instance=request.url.path, error=code)  # fmt: skip


def _from_http(exc: HTTPException, request: Request) -> Problem:
    if exc.status_code == 404:
        return problem(404, "not_found", "Not found", f"no resource at {request.url.path}", request)
    phrase = HTTPStatus(exc.status_code).phrase.capitalize()  # "Method not allowed"
    code = phrase.lower().replace(" ", "_")
    detail = (
        f"{request.method} is not served at {request.url.path}"
        if exc.status_code == 405
        else phrase
    )
    return problem(exc.status_code, code, phrase, detail, request)


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _from_validation(exc: RequestValidationError, request: Request) -> ValidationProblem:
    fields = [FieldProblem(field=_field(e.get("loc", ())), message=str(e.get("msg", "invalid")))
              for e in exc.errors()]  # fmt: skip
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    base = problem(422, "invalid_request", "Invalid request", summary, request)
    return ValidationProblem(**base.model_dump(), errors=fields)


def _from_store(exc: StoreError, request: Request) -> Problem:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    detail = "the result store cannot be read just now; the verdicts in memory are still served"
    return problem(503, "store_unavailable", "Store unavailable", detail, request)


def to_problem(exc: Exception, request: Request) -> Problem:
    """The problem that answers ``exc``; anything unforeseen is a bare 500."""
    match exc:
        case ApiProblem():
            return problem(exc.status, exc.code, exc.title, exc.detail, request)
        case RequestValidationError():
            return _from_validation(exc, request)
        case HTTPException():
            return _from_http(exc, request)
        case StoreError():
            return _from_store(exc, request)
    detail = "netmon could not answer this request; its log says why"
    return problem(500, "internal_error", "Internal error", detail, request)


STORE_RETRY_AFTER = "10"  # seconds: the store's next write attempt is at most this far away


def _headers(exc: Exception) -> dict[str, str]:
    if isinstance(exc, StoreError):
        return {"Retry-After": STORE_RETRY_AFTER}
    if isinstance(exc, ApiProblem):
        return dict(exc.headers)
    if isinstance(exc, HTTPException) and exc.headers:
        return dict(exc.headers)  # e.g. Allow on a 405
    return {}


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def allowed(request: Request) -> str:
    """Every method the OpenAPI document gives this path (Starlette's own 405 names only the
    first route whose path matches: GET /x when POST /x is another route); "" when the path
    is not in the document."""
    table = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = [(re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"),
                  {m.upper() for m in ops if m in HTTP_METHODS})
                 for path, ops in request.app.openapi()["paths"].items()]  # fmt: skip
        request.app.state.allow_table = table
    found: set[str] = set()
    for pattern, methods in table:
        if pattern.match(request.url.path):
            found |= methods
    return ", ".join(sorted(found))


async def handle(request: Request, exc: Exception) -> ProblemResponse:
    """The one exception handler: every error leaves as a problem."""
    body = to_problem(exc, request)
    headers = _headers(exc)
    if body.status == 405 and "Allow" in headers:
        headers["Allow"] = allowed(request) or headers["Allow"]
    return ProblemResponse(body.model_dump(), status_code=body.status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every error with a problem (a 500 is also logged, with its traceback, by the server)."""
    for kind in (ApiProblem, RequestValidationError, HTTPException, StoreError, Exception):
        app.add_exception_handler(kind, handle)


_DESCRIPTIONS = {
    400: "The body cannot be read as JSON text (`bad_request`)",
    401: "No bearer token, or an unknown or revoked one (`unauthorized`, `WWW-Authenticate`)",
    403: "The token lacks the scope this request needs (`forbidden`)",
    404: "Unknown site, device or maintenance window (`not_found`)",
    409: "The resource refuses the change (`conflict`): e.g. an inventory window",
    422: "Invalid query, path or body parameter (`invalid_request`); `errors` lists each",
    500: "A bug (`internal_error`): no details in the body",
    503: "Still loading (`loading`, with `Retry-After`) or the store is down (`store_unavailable`, with `Retry-After`)",
}


_RETRY_AFTER = {
    "description": "Seconds to wait before asking again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's problems (schemas added by :func:`schemas`)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationProblem if status == 422 else Problem
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        out[status] = {
            "description": _DESCRIPTIONS[status],
            "content": {MEDIA_TYPE: {"schema": ref}},
        }
        if status == 503:
            out[status]["headers"] = {"Retry-After": _RETRY_AFTER}
    return out


def schemas() -> dict[str, Any]:
    """The problem models as OpenAPI component schemas."""
    out: dict[str, Any] = {}
    for model in (Problem, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out
