"""A statement as the caller asked for it: JSON (the dict), CSV or PDF."""
from __future__ import annotations

import csv
import io

from flask import Response

from marketplace.statements import pdf

FORMATS = ("json", "csv", "pdf")
CSV_COLUMNS = ("record", "vendor_id", "month", "currency", "kind", "amount", "at", "order_id", "payout_id",
               "stripe_id")
BALANCE_FIGURES = ("opening", "sales", "platform_fees", "refunds", "disputes", "payouts", "closing", "credits")


def as_csv(statement: dict) -> str:
    """One table: a `balance` row per currency and figure (in BALANCE_FIGURES order), then a
    `line` row per line; amounts in minor units, as in the JSON."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    common = {"vendor_id": statement["vendor_id"], "month": statement["month"]}
    for balance in statement["balances"]:
        for figure in BALANCE_FIGURES:
            writer.writerow({**common, "record": "balance", "currency": balance["currency"], "kind": figure,
                             "amount": balance[figure]})
    for line in statement["lines"]:
        writer.writerow({**common, "record": "line", **{k: line[k] for k in CSV_COLUMNS if k in line}})
    return out.getvalue()


def respond(statement: dict, fmt: str):
    """The statement itself for JSON; a CSV or PDF attachment otherwise."""
    if fmt == "json":
        return statement
    name = f"statement-{statement['vendor_id']}-{statement['month']}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        return Response(as_csv(statement), mimetype="text/csv", headers=headers)
    return Response(pdf.render(statement), mimetype="application/pdf", headers=headers)
