"""Statement arithmetic, month bounds and rendering, without a database."""
import csv
import io
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from marketplace.errors import ValidationFailed
from marketplace.statements import export, pdf
from marketplace.statements.service import figures, month_bounds

UTC = timezone.utc


@pytest.mark.parametrize("month, start, end", [
    ("2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ("2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
    ("9998-12", datetime(9998, 12, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)),
])
def test_a_month_is_its_utc_calendar_bounds(month, start, end):
    assert month_bounds(month) == (start, end)


@pytest.mark.parametrize("month", ["", "2026-13", "2026-00", "0000-01", "9999-12", "2026-1", "2026/11",
                                   "2026-11-01", " 2026-11", "２０２６-11"])
def test_anything_else_is_a_validation_error_naming_the_month(month):
    with pytest.raises(ValidationFailed) as error:
        month_bounds(month)
    assert error.value.status == 422 and "month" in error.value.details


signed = st.integers(-10**9, 10**9)


@given(opening=signed, sales=st.integers(0, 10**9), fee=st.integers(0, 10**9), refunds=signed,
       disputes=signed, payouts=signed)
def test_figures_are_non_negative_and_add_up_to_the_closing_balance(opening, sales, fee, refunds, disputes, payouts):
    """Whatever each kind nets to in the month, the identity holds with magnitudes."""
    row = {"currency": "usd", "opening": opening, "sales": sales, "platform_fees": fee, "refunds": refunds,
           "disputes": disputes, "payouts": payouts, "change": sales - fee + refunds + disputes + payouts}
    b = figures(row)
    assert all(b[name] >= 0 for name in ("sales", "platform_fees", "refunds", "disputes", "payouts", "credits"))
    assert b["opening"] + b["sales"] - b["platform_fees"] - b["refunds"] - b["disputes"] - b["payouts"] == b["closing"]
    assert b["closing"] == opening + row["change"] and b["sales"] - b["credits"] == sales


def test_a_dispute_won_after_its_month_is_a_credit():
    row = {"currency": "eur", "opening": 0, "sales": 1000, "platform_fees": 100, "refunds": -200,
           "disputes": 5400, "payouts": 0, "change": 1000 - 100 - 200 + 5400}
    b = figures(row)
    assert (b["disputes"], b["credits"], b["sales"], b["refunds"]) == (0, 5400, 6400, 200)


@pytest.mark.parametrize("amount, currency, shown", [
    (123456, "usd", "1,234.56 USD"), (-5, "usd", "-0.05 USD"), (0, "eur", "0.00 EUR"),
    (1234567, "jpy", "1,234,567 JPY"), (1230, "kwd", "1.230 KWD"),
])
def test_amounts_are_shown_with_the_currencys_exponent(amount, currency, shown):
    assert pdf.format_amount(amount, currency) == shown


STATEMENT = {
    "vendor_id": "ven_1", "vendor_name": "Café ☕ Ünïcode", "month": "2026-11",
    "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    "balances": [{"currency": "usd", "opening": 100, "sales": 1000, "platform_fees": 100, "refunds": 0,
                  "disputes": 0, "payouts": 500, "closing": 500, "credits": 0}],
    "lines": [
        {"at": "2026-11-02T10:00:00Z", "kind": "sale", "currency": "usd", "amount": 1000, "order_id": "ord_1",
         "payout_id": None, "stripe_id": "py_1"},
        {"at": "2026-11-02T10:00:00Z", "kind": "platform_fee", "currency": "usd", "amount": -100,
         "order_id": "ord_1", "payout_id": None, "stripe_id": "py_1"},
        {"at": "2026-11-20T10:00:00Z", "kind": "payout", "currency": "usd", "amount": -500, "order_id": None,
         "payout_id": "pout_1", "stripe_id": "po_1"},
    ],
}


def test_the_csv_is_one_table_of_balances_then_lines():
    rows = list(csv.DictReader(io.StringIO(export.as_csv(STATEMENT))))
    assert [r["kind"] for r in rows if r["record"] == "balance"] == list(export.BALANCE_FIGURES)
    assert [(r["kind"], int(r["amount"]), r["payout_id"]) for r in rows if r["record"] == "line"] == [
        ("sale", 1000, ""), ("platform_fee", -100, ""), ("payout", -500, "pout_1")]


def test_the_pdf_names_the_vendor_month_and_closing_balance_whatever_the_name_holds():
    text = PdfReader(io.BytesIO(pdf.render(STATEMENT))).pages[0].extract_text()
    assert "Vendor: Café ? Ünïcode (ven_1)" in text  # Latin-1 core fonts: the rest shows as '?'
    assert "2026-11" in text and "Closing balance 5.00 USD" in text and "po_1" in text
    empty = {**STATEMENT, "balances": [], "lines": []}
    assert "No activity this month." in PdfReader(io.BytesIO(pdf.render(empty))).pages[0].extract_text()
