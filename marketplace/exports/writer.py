"""CSV as a stream: a header, then one piece of text per chunk of rows, and the cells' formats.

Amounts are written twice: integer minor units (as the ledger holds them) and a decimal
with the currency's exponent (`12.34` usd, `1234` jpy, `1.230` kwd), no thousands separator.
Free text (descriptions, Stripe's failure codes) that a spreadsheet would read as a formula
(a first character among = + - @, tab, carriage return) is written with a leading apostrophe;
amount columns are numbers of ours and never altered.
"""
from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from flask import Response, stream_with_context

from marketplace.database import isoformat
from marketplace.money import exponent

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text(value: str | None) -> str:
    """Free text as a cell no spreadsheet evaluates."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def decimal(amount: int, currency: str) -> str:
    """Minor units as a decimal with the currency's exponent: 1234 usd -> `12.34`, -5 usd -> `-0.05`."""
    scale = _scale(currency)
    if scale == 1:
        return str(amount)
    whole, minor = divmod(abs(amount), scale)
    # str(minor + scale) is the minor part zero-padded behind a leading 1 (5 + 100 -> "105")
    return f"{'-' if amount < 0 else ''}{whole}.{str(minor + scale)[1:]}"


@functools.cache
def _scale(currency: str) -> int:
    return 10 ** exponent(currency)


def stream(header: Sequence[str], chunks: Iterable[Iterable[Sequence]]) -> Iterator[str]:
    """The header's line, then each chunk's lines as one string: one small buffer, emptied per chunk."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    out.writerow(header)
    yield _drain(buffer)
    for rows in chunks:
        out.writerows(rows)
        if buffer.tell():
            yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


def bound(value: datetime) -> str:
    """A window bound in a file name: `2026-11-01` at midnight UTC, else `2026-11-01T093000Z` (no colons)."""
    stamp = isoformat(value) or ""
    if stamp.endswith("T00:00:00Z") and not value.microsecond:
        return stamp[:10]
    return stamp.replace(":", "")


def attachment(name: str, start: datetime, end: datetime, body: Iterator[str]) -> Response:
    """`text/csv; charset=utf-8`, `attachment; filename=<name>_<from>_<to>.csv`, streamed: the body
    is produced while it is sent, inside this request's contexts (stream_with_context)."""
    filename = f"{name}_{bound(start)}_{bound(end)}.csv"
    return Response(stream_with_context(body), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={filename}", "Cache-Control": "no-store"})
