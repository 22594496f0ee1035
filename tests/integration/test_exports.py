"""Accounting exports: the journal and the payouts as streamed CSV, read back with the csv module.

Sales (a destination charge, a separate-charges order of two vendors), a partial refund and a
payout run (one payout paid, one failed, a dry run beside them) go through the app's real
flows on the emulator; the exports must hold every posting (and payout) of the window exactly
once, whatever the chunk size, balanced per entry and currency, within [from, to).
"""
from __future__ import annotations

import contextvars
import csv
import io
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from marketplace.database import isoformat, new_id
from marketplace.exports import service as exports
from marketplace.extensions import db
from marketplace.ledger import service as ledger
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.ledger.service import Line
from marketplace.payments.models import Payment
from marketplace.payouts import service as payouts
from marketplace.payouts.models import Payout
from marketplace.webhooks import handlers
from tests.payments_helpers import emu, order_for, pay
from tests.payouts_helpers import FAILING_BANK, advance, follow_emulator_clock, sell, vendor

JOURNAL = "/api/admin/exports/journal"
PAYOUTS = "/api/admin/exports/payouts"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def export(client, path: str, headers, start: datetime | str, end: datetime | str):
    """(the response, its CSV rows as dicts, the pieces the body was streamed in)."""
    bounds = {"from": start if isinstance(start, str) else start.isoformat(),
              "to": end if isinstance(end, str) else end.isoformat()}
    response = client.get(path, query_string=bounds, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.is_streamed
    pieces = list(response.response)
    response.close()
    text = b"".join(pieces).decode("utf-8")
    return response, list(csv.DictReader(io.StringIO(text))), pieces


def postings_in(start: datetime, end: datetime) -> dict[str, tuple]:
    """posting id -> (entry, posting) of every posting whose entry occurred in [start, end)."""
    db.session.rollback()
    rows = db.session.execute(select(JournalEntry, Posting).join(Posting, Posting.entry_id == JournalEntry.id)
                              .where(JournalEntry.occurred_at >= start, JournalEntry.occurred_at < end))
    return {posting.id: (entry, posting) for entry, posting in rows}


def entry_times() -> list[datetime]:
    db.session.rollback()
    return sorted(set(db.session.scalars(select(JournalEntry.occurred_at))))


def everything() -> tuple[datetime, datetime]:
    times = entry_times()
    return times[0], times[-1] + timedelta(seconds=1)


def assert_balanced(rows) -> None:
    """Debits equal credits per entry and currency, and so per currency over the file."""
    per_entry: dict[tuple[str, str], int] = defaultdict(int)
    per_currency: dict[str, int] = defaultdict(int)
    for row in rows:
        debit, credit = int(row["debit"]), int(row["credit"])
        assert debit >= 0 and credit >= 0 and (debit == 0) != (credit == 0), row
        per_entry[(row["entry_id"], row["currency"])] += debit - credit
        per_currency[row["currency"]] += debit - credit
    assert set(per_entry.values()) == {0} and set(per_currency.values()) == {0}


def post_tied(n: int, at: datetime, vendor_id: str = "ven_tied", **extra) -> list[str]:
    """n internal entries that all occurred at `at` (ties on the keyset's first column)."""
    ids = []
    for k in range(n):
        entry = ledger.post("platform_fee", [Line("platform:fee_revenue", "usd", -(100 + k)),
                                             Line(f"vendor:{vendor_id}:platform_fees", "usd", 100 + k)],
                            key=f"tied-{new_id('k')}", occurred_at=at, **extra)
        ids.append(entry.id)
    db.session.commit()
    return ids


@pytest.fixture
def activity(client, auth, emulator, monkeypatch):
    """Three vendors' sales through the API (a destination charge, a separate-charges order of
    two vendors, one more), a partial refund, a dry run and a payout run (two paid, one failed)."""
    follow_emulator_clock(monkeypatch, emulator)
    started = datetime.now(timezone.utc)
    shopper, admin = auth.headers("shopper"), auth.headers("admin")
    alice, bob, carol = vendor(emulator), vendor(emulator), vendor(emulator, bank=FAILING_BANK)
    single = sell(client, shopper, alice, 5000, emulator)
    both = order_for(client, shopper, [alice, bob], [3000, 2000])
    assert pay(client, shopper, both["id"], emulator=emulator).status_code == 200
    third = sell(client, shopper, carol, 3000, emulator)
    refund = client.post(f"/api/orders/{single['id']}/refunds", json={"amount": 1000, "reason": "duplicate"},
                         headers=admin).get_json()
    assert refund["status"] == "succeeded", refund
    advance(emulator, 8)
    dry = payouts.run_now(dry_run=True)
    run = payouts.run_now()
    assert dry.payouts_created == run.payouts_created == 3
    advance(emulator, 1.1)  # pending -> in transit -> paid (carol's bank refuses it: failed)
    for seller, kind in ((alice, "payout.paid"), (bob, "payout.paid"), (carol, "payout.failed")):
        for event in emu(emulator, "GET", "/v1/events", account=seller.stripe_account_id, type=kind)["data"]:
            handlers.dispatch(event)
    db.session.rollback()
    return {"admin": admin, "vendors": (alice, bob, carol), "orders": (single, both, third), "refund": refund,
            "run": run.id, "dry_run": dry.id, "started": started}


@pytest.mark.needs("emulator")
def test_every_posting_of_the_window_is_exported_once_with_its_references(client, activity):
    start, end = everything()
    response, rows, pieces = export(client, JOURNAL, activity["admin"], start, end)
    assert response.mimetype == "text/csv" and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=journal_{isoformat(start).replace(':', '')}_{isoformat(end).replace(':', '')}.csv")
    assert list(rows[0]) == list(exports.JOURNAL_COLUMNS) and len(pieces) >= 2

    expected = postings_in(start, end)
    assert Counter(row["posting_id"] for row in rows) == Counter(set(expected)), "each posting exactly once"
    assert len(rows) == len(expected) == db.session.query(Posting).count()
    assert_balanced(rows)
    in_order = sorted(expected.values(), key=lambda pair: (pair[0].occurred_at, pair[0].id, pair[1].seq))
    assert [row["posting_id"] for row in rows] == [posting.id for _, posting in in_order]
    for row in rows:
        entry, posting = expected[row["posting_id"]]
        assert (row["entry_id"], row["kind"], row["account"], row["currency"]) == (
            entry.id, entry.kind, posting.account, posting.currency)
        assert row["occurred_at"] == isoformat(entry.occurred_at)
        assert int(row["debit"]) - int(row["credit"]) == posting.amount
        for side in ("debit", "credit"):
            assert row[f"{side}_decimal"] == f"{int(row[side]) // 100}.{int(row[side]) % 100:02d}"
        assert row["vendor_id"] == (posting.account.split(":")[1] if posting.account.startswith("vendor:") else "")
        assert row["account_name"] == posting.account.rsplit(":", 1)[1]
        assert (row["local_type"], row["local_id"]) == (entry.local_type or "", entry.local_id or "")
        assert (row["stripe_object_id"], row["stripe_balance_transaction_id"], row["stripe_account"]) == (
            entry.stripe_object_id or "", entry.stripe_balance_transaction_id or "", entry.stripe_account or "")

    single = activity["orders"][0]
    payments = {p.order_id: p for p in db.session.scalars(select(Payment))}
    by_kind = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    for row in by_kind["charge"] + by_kind["transfer"] + by_kind["vendor_payment"] + by_kind["refund"]:
        payment = payments[row["order_id"]]
        assert row["order_id"] in {order["id"] for order in activity["orders"]}
        assert (row["payment_id"], row["stripe_payment_intent_id"], row["stripe_charge_id"]) == (
            payment.id, payment.payment_intent_id, payment.stripe_charge_id)
        assert row["stripe_payment_intent_id"].startswith("pi_") and row["stripe_charge_id"].startswith("ch_")
        assert row["stripe_balance_transaction_id"].startswith("txn_")
    assert {row["stripe_object_id"][:3] for row in by_kind["charge"]} == {"ch_"}
    assert {row["stripe_object_id"][:3] for row in by_kind["transfer"]} == {"tr_"}
    assert {row["stripe_object_id"][:3] for row in by_kind["vendor_payment"]} == {"py_"}
    assert {row["stripe_account"][:5] for row in by_kind["vendor_payment"]} == {"acct_"}
    assert {(row["refund_id"], row["order_id"], row["stripe_object_id"][:3]) for row in by_kind["refund"]} == {
        (activity["refund"]["id"], single["id"], "re_")}
    real = {p.id: p for p in db.session.scalars(select(Payout).where(Payout.dry_run.is_(False)))}
    for kind in ("payout", "payout_failure"):
        assert by_kind[kind] and all(row["payout_id"] in real and row["stripe_object_id"] ==
                                     real[row["payout_id"]].stripe_payout_id for row in by_kind[kind])
    assert {row["payout_id"] for row in by_kind["payout"]} == set(real)


@pytest.mark.needs("emulator")
def test_the_window_is_from_inclusive_to_exclusive(client, activity):
    times = entry_times()
    assert len(times) >= 4
    start, end = times[1], times[-2]
    _, rows, _ = export(client, JOURNAL, activity["admin"], start, end)
    expected = postings_in(start, end)
    assert sorted(row["posting_id"] for row in rows) == sorted(expected)
    exported = {row["entry_id"] for row in rows}
    db.session.rollback()
    at_from = set(db.session.scalars(select(JournalEntry.id).where(JournalEntry.occurred_at == start)))
    at_to = set(db.session.scalars(select(JournalEntry.id).where(JournalEntry.occurred_at == end)))
    assert at_from and at_from <= exported, "an entry exactly at `from` is in"
    assert at_to and not at_to & exported, "an entry exactly at `to` is out"
    assert_balanced(rows)


@pytest.mark.needs("emulator")
def test_any_chunk_size_gives_every_row_once_in_the_same_order(app, client, activity):
    first, _ = everything()
    tied = post_tied(7, first)  # seven more entries at the first entry's very time
    start, end = everything()
    _, whole, _ = export(client, JOURNAL, activity["admin"], start, end)
    entries = len({row["entry_id"] for row in whole})
    assert set(tied) <= {row["entry_id"] for row in whole} and entries > 10
    for size in (1, 2, 3, 7, entries - 1, entries, entries + 1):
        app.config["EXPORT_CHUNK_SIZE"] = size
        _, rows, pieces = export(client, JOURNAL, activity["admin"], start, end)
        assert rows == whole, size
        assert len(pieces) == 1 + -(-entries // size), size  # the header, then a piece per chunk
    assert len(whole) == len({row["posting_id"] for row in whole}) == len(postings_in(start, end))


@pytest.mark.needs("emulator")
def test_the_payouts_export_matches_the_payouts(app, client, activity):
    now = datetime.now(timezone.utc)
    response, rows, _ = export(client, PAYOUTS, activity["admin"], activity["started"], now)
    assert response.headers["Content-Disposition"].startswith("attachment; filename=payouts_")
    assert list(rows[0]) == list(exports.PAYOUT_COLUMNS)
    db.session.rollback()
    real = {p.id: p for p in db.session.scalars(select(Payout).where(Payout.dry_run.is_(False)))}
    assert len(real) == 3 and sorted(row["payout_id"] for row in rows) == sorted(real), "no dry run's payouts"
    entries = {(e.stripe_object_id, e.kind): e.stripe_balance_transaction_id
               for e in db.session.scalars(select(JournalEntry).where(JournalEntry.local_type == "payout"))}
    for row in rows:
        payout = real[row["payout_id"]]
        assert (row["run_id"], row["vendor_id"], row["stripe_account"], row["stripe_payout_id"]) == (
            activity["run"], payout.vendor_id, payout.stripe_account, payout.stripe_payout_id)
        assert row["stripe_payout_id"].startswith("po_") and row["stripe_account"].startswith("acct_")
        assert (int(row["amount"]), row["amount_decimal"], row["currency"]) == (
            payout.amount, f"{payout.amount // 100}.{payout.amount % 100:02d}", "usd")
        assert row["stripe_balance_transaction_id"] == entries[(payout.stripe_payout_id, "payout")]
        assert row["stripe_balance_transaction_id"].startswith("txn_")
        assert (row["created_at"], row["paid_at"], row["period_end"]) == (
            isoformat(payout.created_at), isoformat(payout.paid_at) or "", isoformat(payout.period_end))
        assert all(int(row[f]) == payout.breakdown[f] for f in payout.breakdown)
        assert int(row["order_count"]) == payout.order_count
    statuses = {row["status"]: row for row in rows}
    assert Counter(row["status"] for row in rows) == {"paid": 2, "failed": 1}
    failed = statuses["failed"]
    assert failed["failure_code"] == "no_account" and failed["paid_at"] == ""
    assert failed["stripe_failure_balance_transaction_id"] == entries[(failed["stripe_payout_id"], "payout_failure")]
    assert all(row["paid_at"] and not row["stripe_failure_balance_transaction_id"]
               for row in rows if row["status"] == "paid")

    ordered = sorted(real.values(), key=lambda p: (p.created_at, p.id))
    _, inside, _ = export(client, PAYOUTS, activity["admin"], ordered[1].created_at, ordered[2].created_at)
    assert [row["payout_id"] for row in inside] == [ordered[1].id], "created at `from`: in; at `to`: out"
    app.config["EXPORT_CHUNK_SIZE"] = 1
    _, one_by_one, pieces = export(client, PAYOUTS, activity["admin"], activity["started"], now)
    assert one_by_one == rows and len(pieces) == 4


def test_free_text_cannot_become_a_formula_and_amounts_stay_numbers(client, admin):
    descriptions = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR",
                    "plain - text", 'commas, "quotes"\nand a newline', ""]
    for k, description in enumerate(descriptions):
        ledger.post("refund", [Line("platform:stripe_balance", "usd", -1000 - k), Line("platform:refunds", "usd", 1000 + k)],
                    key=f"text-{k}", occurred_at=T0 + timedelta(seconds=k), description=description)
    db.session.commit()
    _, rows, _ = export(client, JOURNAL, admin, "2026-03-01", "2026-03-02")
    assert len(rows) == 2 * len(descriptions)
    shown = [row["description"] for row in rows[::2]]
    assert shown == ["'" + d for d in descriptions[:6]] + descriptions[6:]
    for row in rows:
        assert row["credit"].isdigit() and row["debit"].isdigit()
        assert row["credit_decimal"][0].isdigit() and row["debit_decimal"][0].isdigit()
    assert rows[0]["credit"] == "1000" and rows[0]["credit_decimal"] == "10.00"


def test_amounts_follow_the_currency_exponent_and_date_bounds_name_the_file(client, admin):
    for k, (currency, amount) in enumerate((("usd", 12345), ("jpy", 1234), ("kwd", 1230), ("usd", 5))):
        ledger.post("refund", [Line("platform:stripe_balance", currency, -amount),
                               Line("platform:refunds", currency, amount)],
                    key=f"exp-{k}", occurred_at=T0 + timedelta(seconds=k))
    db.session.commit()
    response, rows, _ = export(client, JOURNAL, admin, "2026-03-01", "2026-03-02")
    assert response.headers["Content-Disposition"] == "attachment; filename=journal_2026-03-01_2026-03-02.csv"
    decimals = ["123.45", "1234", "1.230", "0.05"]
    assert [(row["currency"], row["credit"], row["credit_decimal"], row["debit_decimal"]) for row in rows[::2]] == [
        ("usd", "12345", decimals[0], "0.00"), ("jpy", "1234", decimals[1], "0"), ("kwd", "1230", decimals[2], "0.000"),
        ("usd", "5", decimals[3], "0.00")]
    assert [row["debit_decimal"] for row in rows[1::2]] == decimals
    assert_balanced(rows)
    _, none, pieces = export(client, JOURNAL, admin, "2026-03-02", "2026-03-03")
    assert none == [] and b"".join(pieces).decode().startswith("entry_id,occurred_at,")


@pytest.mark.parametrize("path", [JOURNAL, PAYOUTS])
def test_only_admins_export(client, auth, path):
    window = {"from": "2026-03-01", "to": "2026-03-02"}
    for role in ("shopper", "vendor"):
        response = client.get(path, query_string=window, headers=auth.headers(role))
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    response = client.get(path, query_string=window)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("path", [JOURNAL, PAYOUTS])
@pytest.mark.parametrize("window, field", [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
    ({"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T10:00:00Z"}, "to"),
    ({"from": "2026-03-01T11:00:00+01:00", "to": "2026-03-01T10:00:00Z"}, "to"),  # the same instant
    ({"from": "yesterday", "to": "2026-03-01"}, "from"),
    ({"from": "2026-03-01", "to": "2026-02-30"}, "to"),
    ({"from": "2026-03-01"}, "to"),
    ({"to": "2026-03-01"}, "from"),
    ({}, "from"),
])
def test_a_bad_or_missing_bound_is_a_validation_error(client, admin, path, window, field):
    response = client.get(path, query_string=window, headers=admin)
    assert response.status_code == 422 and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and field in error["details"], error


def _consume(app, path, headers, window, between=None, stop_after=None):
    """The export read as a WSGI server reads it: in contexts of its own (none of the test's),
    piece by piece; `between(i)` runs after piece i; `stop_after` pieces then the client goes."""
    def run():
        client = app.test_client()
        response = client.get(path, query_string=window, headers=headers)
        pieces = []
        try:
            for piece in response.response:
                pieces.append(piece)
                if between is not None:
                    between(len(pieces))
                if stop_after is not None and len(pieces) == stop_after:
                    break
        finally:
            response.close()
        return pieces

    return contextvars.Context().run(run)


def _late_entry(key: str) -> tuple[dict, list[dict]]:
    """An entry at T0 and its postings as rows, to insert on a connection of its own."""
    entry = {"id": new_id("je"), "entry_key": key, "kind": "refund", "description": "", "occurred_at": T0,
             "created_at": T0}
    lines = [{"id": new_id("pst"), "entry_id": entry["id"], "seq": seq, "account": account, "currency": "usd",
              "amount": amount} for seq, (account, amount) in enumerate((("platform:stripe_balance", -7),
                                                                         ("platform:refunds", 7)))]
    return entry, lines


def test_the_stream_reads_one_snapshot_in_its_own_session_and_gives_its_connection_back(app, admin, pg_only):
    """Read as a server reads it (the request's contexts popped before the body is iterated, then
    pushed again for it): nothing is read until the body is; then every chunk reads the snapshot
    of the first, and the session ends with the stream, even when the client leaves mid-file."""
    post_tied(6, T0)
    app.config["EXPORT_CHUNK_SIZE"] = 2
    window = {"from": "2026-03-01", "to": "2026-03-02"}

    def commit_at(piece_wanted: int, entry: dict, lines: list[dict]):
        def between(piece: int) -> None:
            if piece == piece_wanted:
                with db.engine.begin() as conn:
                    conn.execute(JournalEntry.__table__.insert(), entry)
                    conn.execute(Posting.__table__.insert(), lines)
        return between

    def read(**kwargs) -> tuple[list[bytes], set[str]]:
        db.session.rollback()
        assert db.engine.pool.checkedout() == 0
        pieces = _consume(app, JOURNAL, admin, window, **kwargs)
        assert db.engine.pool.checkedout() == 0, "the request's session ended with the stream"
        return pieces, {row["entry_id"] for row in csv.DictReader(io.StringIO(b"".join(pieces).decode()))}

    early, early_lines = _late_entry("early")  # committed after the header, before any chunk is read
    pieces, exported = read(between=commit_at(1, early, early_lines))
    assert len(pieces) == 1 + 4 and early["id"] in exported and len(exported) == 7

    late, late_lines = _late_entry("late")  # committed once the first chunk was read
    pieces, exported = read(between=commit_at(2, late, late_lines))
    assert len(pieces) == 1 + 4 and late["id"] not in exported and len(exported) == 7
    assert late["id"] in read()[1], "committed: the next export has it"

    gone, _ = read(stop_after=2)  # the client leaves after one chunk
    assert len(gone) == 2
