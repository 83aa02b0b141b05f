"""Keyset pagination: opaque cursors and the ``next`` link of a list.

A cursor is the key of the last item a page returned, as URL-safe base64 (no padding) of a
JSON array ``[version, list, *key]``: ``[1, "changes", 42]`` is the change feed after row 42.
Clients treat it as opaque; the version lets a later netmon change the key and still refuse
(422) or read an old cursor. A cursor that is not base64, not that JSON, of another version or
of another list is a 422 ``invalid_request`` problem naming ``query.after``, never a 500.

``next`` is the page after this one as a path with its query (relative to the server: a proxy
in front may change the host): the request's own query with ``after`` set to the last item's
cursor. The same link is sent as ``Link: <...>; rel="next"`` (RFC 8288).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError

VERSION = 1
Key = tuple[str | int | float | None, ...]
AFTER = "an item's `cursor` (as in a `next` link): the page after that item; default: the first"
After = Annotated[str | None, Query(description=AFTER)]


def encode(kind: str, key: Key) -> str:
    """The cursor of the item with ``key`` in the list ``kind``."""
    raw = json.dumps([VERSION, kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(kind: str, cursor: str, types: Sequence[tuple[type, ...]]) -> Key:
    """The key in ``cursor``, each part of one of ``types`` (422 problem if it is not one of
    this list's cursors)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        item = json.loads(raw)
    except (binascii.Error, ValueError):  # ValueError: bad base64 alphabet, JSON, UTF-8
        raise invalid("not a cursor netmon gave out (not base64 of JSON)") from None
    if not isinstance(item, list) or item[:1] != [VERSION]:
        raise invalid(f"not a version {VERSION} cursor")
    if item[1:2] != [kind]:
        raise invalid(f"not a cursor of this list ({kind})")
    key = item[2:]
    if len(key) != len(types) or not all(_fits(v, t) for v, t in zip(key, types, strict=True)):
        raise invalid(f"a {kind} cursor with a key netmon does not make")
    return tuple(key)


def _fits(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true is not an id
        return False
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def invalid(message: str) -> RequestValidationError:
    """The 422 of a bad ``after`` (rendered by netmon.api.problems like any bad parameter)."""
    return RequestValidationError([{"loc": ("query", "after"), "msg": message, "type": "cursor"}])


def next_url(request: Request, cursor: str) -> str:
    """This request's path and query with ``after=cursor``."""
    url = request.url.include_query_params(after=cursor)
    return f"{url.path}?{url.query}"


def link(response: Response, url: str | None) -> None:
    """Send ``url`` as the ``Link: rel="next"`` header (none when there is no next page)."""
    if url is not None:
        response.headers["Link"] = f'<{url}>; rel="next"'


def page_next(request: Request, response: Response, cursor: str | None) -> str | None:
    """The ``next`` of a page whose last item has ``cursor`` (None: the last page), sent as
    the Link header too."""
    url = next_url(request, cursor) if cursor is not None else None
    link(response, url)
    return url
