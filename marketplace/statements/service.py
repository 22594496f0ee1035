"""Vendors' monthly statements, read from the ledger (see query.py for which entry is what).

A statement is of the vendor's Stripe balance (`vendor:<id>:stripe_balance`) over one UTC
calendar month [first day 00:00, next month's first day 00:00), per currency:

    opening + sales - platform_fees - refunds - disputes - payouts == closing

- `opening` / `closing`: the balance before the month / at its end (the sum of every
  posting on the balance before then). A month with no activity has zero figures and
  closing == opening == the balance carried.
- `sales`: the gross of the month's sales (a destination charge's whole transfer, or on
  separate charges the transfer plus the platform fee kept), plus `credits` (below).
- `platform_fees`: the platform's fee on those sales.
- `refunds`: what refunds took from the balance: the refunded share *less the platform fee
  returned with it* (the reversal is of the vendor's net loss; the fee it returns never
  reaches the balance), less what failed refunds gave back, and fees Stripe credited back.
- `disputes`: what dispute recoveries took back, less what disputes ended in the platform's
  favour gave back (re-transfers).
- `payouts`: payouts by the date the ledger posts them, the creation of the payout at
  Stripe (its balance transaction), less payouts that failed or were canceled, posted
  when Stripe gave the money back.

Every figure is a non-negative magnitude. Refunds, disputes and payouts can also bring money
back, and are netted within the month; when what came back exceeds the month's own money out
of that kind (a dispute opened last month and won this month, last month's payout failing
now), that kind shows 0 and the rest is counted as money in: added to `sales`, and shown
apart as `credits` (so `sales - credits` is always the month's gross sales). The lines show
each entry with its sign, so nothing is hidden by the netting.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from marketplace.auth.models import User
from marketplace.database import isoformat
from marketplace.errors import NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.statements import query
from marketplace.vendors.models import Vendor
from marketplace.vendors.service import vendor_for_user

_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
MONTH_ERROR = "A month is YYYY-MM (0001-01 to 9998-12)."
OUTFLOWS = ("refunds", "disputes", "payouts")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a `YYYY-MM` month in UTC; 422 validation_error for anything else."""
    match = _MONTH.match(month or "")
    year, number = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not (1 <= year <= 9998 and 1 <= number <= 12):
        raise ValidationFailed("The month is invalid.", details={"month": [MONTH_ERROR]})
    start = datetime(year, number, 1, tzinfo=timezone.utc)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def figures(row: dict) -> dict:
    """A currency's statement balance from its signed sums (module docstring: credits)."""
    credits = sum(max(0, row[name]) for name in OUTFLOWS)
    balance = {"currency": row["currency"], "opening": row["opening"], "sales": row["sales"] + credits,
               "platform_fees": row["platform_fees"],
               **{name: max(0, -row[name]) for name in OUTFLOWS},
               "closing": row["opening"] + row["change"], "credits": credits}
    return balance


def statement(vendor: Vendor, month: str) -> dict:
    """The vendor's statement of `month` (YYYY-MM): balances per currency and the lines."""
    start, end = month_bounds(month)
    balances = [figures(row) for row in query.balances(vendor.id, start, end)]
    lines = query.lines(vendor.id, start, end)
    db.session.rollback()  # a read: end the transaction
    return {"vendor_id": vendor.id, "vendor_name": vendor.display_name, "month": month,
            "period": {"start": isoformat(start), "end": isoformat(end)},
            "balances": balances,
            "lines": [{**line, "at": isoformat(line["at"])} for line in lines]}


def vendor_statement(user: User, month: str) -> dict:
    """The caller's own statement of `month` (a bad month is a 422 before anything is looked up)."""
    month_bounds(month)
    return statement(vendor_for_user(user), month)


def admin_statement(vendor_id: str, month: str) -> dict:
    """Any vendor's statement of `month` (admin); 404 vendor_not_found (a bad month is a 422 first)."""
    month_bounds(month)
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None:
        raise NotFound("No such vendor.", code="vendor_not_found")
    return statement(vendor, month)


def vendor_months(user: User) -> dict:
    """`{"data": [{month, currencies}]}`: the months with activity on the caller's balance, newest first."""
    vendor = vendor_for_user(user)
    months: dict[str, list[str]] = {}
    for month, currency in query.months(vendor.id):
        months.setdefault(month, []).append(currency)
    db.session.rollback()
    return {"data": [{"month": month, "currencies": currencies} for month, currencies in months.items()]}
