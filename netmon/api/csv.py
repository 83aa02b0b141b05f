"""``text/csv`` exports: asked for by ``?format=csv`` or ``Accept: text/csv``; a header row of
field names, UTF-8 with a BOM (so a spreadsheet opens Hindi names right), one row per item."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response

MEDIA_TYPE = "text/csv"
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="csv: the same data as text/csv (also `Accept: text/csv`)"),
]
RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}
}


def wanted(request: Request, format: str | None) -> bool:  # noqa: A002
    if format is not None:
        return format == "csv"
    accept = request.headers.get("accept", "")
    return MEDIA_TYPE in accept and "application/json" not in accept


def response(fields: Sequence[str], rows: Iterable[Mapping[str, Any]], name: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\r\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return Response(
        ("\ufeff" + out.getvalue()).encode(),
        media_type=f"{MEDIA_TYPE}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
