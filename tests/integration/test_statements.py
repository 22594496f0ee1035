"""Vendors' monthly statements through the emulator: a month of sales, a partial refund, a lost
dispute and two payout runs for two vendors in two currencies; JSON, CSV and PDF agree."""
import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.ledger import service as ledger_service
from marketplace.ledger.service import Line
from marketplace.payments import disputes
from marketplace.payouts import service as payouts
from marketplace.payouts.models import Payout
from marketplace.statements.pdf import format_amount
from tests.factories import ProductFactory, VendorFactory
from tests.payments_helpers import emu, pay
from tests.payouts_helpers import advance, follow_emulator_clock, ledger_balance, vendor

pytestmark = pytest.mark.needs("emulator")

FIGURES = ("sales", "platform_fees", "refunds", "disputes", "payouts")
LINE_FIGURES = {"sale": "sales", "platform_fee": "platform_fees", "refund": "refunds", "dispute": "disputes",
                "payout": "payouts"}


def month_after(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def month(monkeypatch, emulator) -> str:
    """The emulator's clock moved to an hour into next month, the app's ledger clock and payout
    cut-off following it (as the app's clock and Stripe's agree in production): 'YYYY-MM'."""
    now = datetime.fromtimestamp(emu(emulator, "GET", "/_emulator/clock")["now"], timezone.utc)
    start = month_after(now)
    emu(emulator, "POST", "/_emulator/clock/advance", seconds=int((start - now).total_seconds()) + 3600)
    clock = emulator.emulator.clock
    monkeypatch.setattr(ledger_service, "utcnow", lambda: datetime.now(timezone.utc) + timedelta(
        seconds=clock.now() - int(datetime.now(timezone.utc).timestamp())))
    follow_emulator_clock(monkeypatch, emulator)
    emu(emulator, "POST", "/_emulator/platform", settlement_currencies=["usd", "eur"])
    return f"{start:%Y-%m}"


def sale(client, shopper, sellers, prices, currency="usd", payment_method="pm_card_visa", emulator=None):
    """A paid order of one product per price (product i from sellers[i]) in `currency`."""
    items = []
    for seller, price in zip(sellers, prices):
        product = ProductFactory(vendor=None, vendor_id=seller.id, price=price, currency=currency, stock=10)
        items.append({"product_id": product.id, "quantity": 1})
    order = client.post("/api/orders", json={"items": items}, headers=shopper).get_json()
    assert pay(client, shopper, order["id"], payment_method, emulator=emulator).status_code == 200
    return order


def fee(order, seller) -> int:
    return next(s["platform_fee"] for s in order["splits"] if s["vendor_id"] == seller.id)


@pytest.fixture
def month_of_activity(client, auth, emulator, month):
    """Alice and Bob, each selling in usd and eur over the month; returns what each statement must say."""
    shopper, admin = auth.headers("shopper"), auth.headers("admin")
    (alice_user, alice_headers), (bob_user, bob_headers) = auth.user("vendor"), auth.user("vendor")
    alice, bob = vendor(emulator, user=alice_user), vendor(emulator, user=bob_user)
    a_usd = sale(client, shopper, [alice], [5000], emulator=emulator)
    both = sale(client, shopper, [alice, bob], [3000, 2000], emulator=emulator)  # separate charges
    a_eur = sale(client, shopper, [alice], [4000], "eur", emulator=emulator)
    disputed = sale(client, shopper, [bob], [6000], "eur", "pm_card_createDispute", emulator=emulator)
    b_eur = sale(client, shopper, [bob], [1500], "eur", emulator=emulator)
    refund = client.post(f"/api/orders/{a_usd['id']}/refunds", json={"amount": 1000, "reason": "duplicate"},
                         headers=admin).get_json()
    assert refund["status"] == "succeeded", refund
    [dispute] = emu(emulator, "GET", "/v1/disputes")["data"]
    disputes.handle_dispute_created(dispute)
    emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome="lost")
    assert disputes.handle_dispute_closed(dispute).status == "lost"

    advance(emulator, 8)
    assert payouts.run_now().payouts_created == 4
    later = [sale(client, shopper, [alice], [2000], emulator=emulator),
             sale(client, shopper, [bob], [3000], "eur", emulator=emulator),
             sale(client, shopper, [alice, bob], [1200, 800], "eur", emulator=emulator),
             sale(client, shopper, [bob], [2500], emulator=emulator)]
    advance(emulator, 8)
    assert payouts.run_now().payouts_created == 4
    last = [sale(client, shopper, [alice], [700], emulator=emulator),  # pending: the closing balances
            sale(client, shopper, [bob], [900], "eur", emulator=emulator),
            sale(client, shopper, [alice, bob], [600, 400], "eur", emulator=emulator),
            sale(client, shopper, [bob], [300], emulator=emulator)]

    [allocation] = refund["allocations"]
    expected = {
        (alice.id, "usd"): {"sales": 5000 + 3000 + 2000 + 700, "refunds": 1000 - allocation["platform_fee_refunded"],
                            "platform_fees": fee(a_usd, alice) + fee(both, alice) + fee(later[0], alice)
                            + fee(last[0], alice), "disputes": 0},
        (alice.id, "eur"): {"sales": 4000 + 1200 + 600,
                            "platform_fees": fee(a_eur, alice) + fee(later[2], alice) + fee(last[2], alice),
                            "refunds": 0, "disputes": 0},
        (bob.id, "usd"): {"sales": 2000 + 2500 + 300,
                          "platform_fees": fee(both, bob) + fee(later[3], bob) + fee(last[3], bob),
                          "refunds": 0, "disputes": 0},
        (bob.id, "eur"): {"sales": 6000 + 1500 + 3000 + 800 + 900 + 400, "refunds": 0,
                          "platform_fees": fee(disputed, bob) + fee(b_eur, bob) + fee(later[1], bob)
                          + fee(later[2], bob) + fee(last[1], bob) + fee(last[2], bob),
                          "disputes": 6000 - fee(disputed, bob)},
    }
    return {"month": month, "alice": (alice, alice_headers), "bob": (bob, bob_headers), "admin": admin,
            "expected": expected}


def statement(client, headers, month, fmt=None, vendor_id=None):
    path = (f"/api/admin/vendors/{vendor_id}/statements/{month}" if vendor_id
            else f"/api/vendors/me/statements/{month}")
    return client.get(path, query_string={"format": fmt} if fmt else None, headers=headers)


def payouts_of(seller, currency):
    db.session.rollback()
    return list(db.session.scalars(select(Payout).where(Payout.vendor_id == seller.id, Payout.currency == currency,
                                                        Payout.dry_run.is_(False))))


def assert_adds_up(body, seller, expected):
    """Every balance is the identity of non-negative figures, the lines add up to them, each line
    names what it came from, and the figures are the month's activity."""
    assert body["vendor_id"] == seller.id and body["vendor_name"] == seller.display_name
    assert [b["currency"] for b in body["balances"]] == ["eur", "usd"]
    for balance in body["balances"]:
        cur = balance["currency"]
        assert all(type(balance[f]) is int and balance[f] >= 0 for f in FIGURES)
        assert (balance["opening"] + balance["sales"] - balance["platform_fees"] - balance["refunds"]
                - balance["disputes"] - balance["payouts"]) == balance["closing"]
        lines = [line for line in body["lines"] if line["currency"] == cur]
        for kind, figure in LINE_FIGURES.items():
            total = sum(line["amount"] for line in lines if line["kind"] == kind)
            assert abs(total) == balance[figure], (cur, kind)
        assert balance["opening"] + sum(line["amount"] for line in lines) == balance["closing"]
        made = payouts_of(seller, cur)
        assert len(made) == 2 and balance["payouts"] == sum(p.amount for p in made)
        assert {line["payout_id"] for line in lines if line["kind"] == "payout"} == {p.id for p in made}
        assert {line["stripe_id"] for line in lines if line["kind"] == "payout"} == {p.stripe_payout_id for p in made}
        assert balance["opening"] == 0 and balance["credits"] == 0
        assert balance["closing"] == ledger_balance(seller, cur) > 0
        assert {f: balance[f] for f in ("sales", "platform_fees", "refunds", "disputes")} == expected[(seller.id, cur)]
    for line in body["lines"]:
        assert line["at"].startswith(body["month"]) and line["at"].endswith("Z")
        if line["kind"] == "payout":
            assert line["order_id"] is None and line["stripe_id"].startswith("po_")
        else:
            assert line["order_id"].startswith("ord_") and line["payout_id"] is None
        if line["kind"] in ("refund", "dispute"):
            assert line["amount"] < 0 and line["stripe_id"].startswith("pyr_")


def test_a_month_of_activity_adds_up_in_json_csv_and_pdf(client, month_of_activity):
    activity, month = month_of_activity, month_of_activity["month"]
    for name in ("alice", "bob"):
        seller, headers = activity[name]
        months = client.get("/api/vendors/me/statements", headers=headers)
        assert months.status_code == 200
        assert months.get_json() == {"data": [{"month": month, "currencies": ["eur", "usd"]}]}

        answer = statement(client, headers, month)
        assert answer.status_code == 200 and answer.mimetype == "application/json"
        body = answer.get_json()
        assert_adds_up(body, seller, activity["expected"])
        assert body["period"] == {"start": f"{month}-01T00:00:00Z", "end": body["period"]["end"]}

        as_csv = statement(client, headers, month, "csv")
        assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
        assert f"statement-{seller.id}-{month}.csv" in as_csv.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
        assert {(r["vendor_id"], r["month"]) for r in rows} == {(seller.id, month)}
        balances = {}
        for row in (r for r in rows if r["record"] == "balance"):
            balances.setdefault(row["currency"], {"currency": row["currency"]})[row["kind"]] = int(row["amount"])
        assert [balances[c] for c in sorted(balances)] == body["balances"]
        lines = [{"at": r["at"], "kind": r["kind"], "currency": r["currency"], "amount": int(r["amount"]),
                  "order_id": r["order_id"] or None, "payout_id": r["payout_id"] or None,
                  "stripe_id": r["stripe_id"] or None} for r in rows if r["record"] == "line"]
        assert lines == body["lines"]

        as_pdf = statement(client, headers, month, "pdf")
        assert as_pdf.status_code == 200 and as_pdf.mimetype == "application/pdf"
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(as_pdf.data)).pages)
        assert seller.display_name in text and month in text
        flat = text.replace("\n", " ")
        for balance in body["balances"]:
            assert f"Closing balance {format_amount(balance['closing'], balance['currency'])}" in flat


def test_admins_read_any_vendors_statement_the_same(client, auth, month_of_activity):
    activity, month = month_of_activity, month_of_activity["month"]
    seller, headers = activity["bob"]
    admin = activity["admin"]
    own = statement(client, headers, month).get_json()
    assert statement(client, admin, month, vendor_id=seller.id).get_json() == own
    own_csv = statement(client, headers, month, "csv").data
    assert statement(client, admin, month, "csv", vendor_id=seller.id).data == own_csv
    assert statement(client, admin, month, "pdf", vendor_id=seller.id).mimetype == "application/pdf"
    missing = statement(client, admin, month, vendor_id="ven_nothere")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "vendor_not_found"
    assert statement(client, headers, month, vendor_id=seller.id).status_code == 403
    assert statement(client, auth.headers("shopper"), month).status_code == 403


def test_months_without_activity_carry_the_balance(client, month_of_activity):
    activity, month = month_of_activity, month_of_activity["month"]
    seller, headers = activity["alice"]
    start = datetime.strptime(f"{month}-01", "%Y-%m-%d").replace(tzinfo=timezone.utc)
    before, after = f"{start - timedelta(days=1):%Y-%m}", f"{month_after(start):%Y-%m}"
    closing = {b["currency"]: b["closing"] for b in statement(client, headers, month).get_json()["balances"]}
    empty = statement(client, headers, before)
    assert empty.status_code == 200 and empty.get_json()["balances"] == [] and empty.get_json()["lines"] == []
    carried = statement(client, headers, after).get_json()
    assert carried["lines"] == []
    for balance in carried["balances"]:
        assert balance["opening"] == balance["closing"] == closing[balance["currency"]]
        assert all(balance[f] == 0 for f in FIGURES)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-01", "abcd-ef", "2026-01-01", "9999-12"])
def test_a_bad_month_is_a_validation_error(client, auth, month):
    user, headers = auth.user("vendor")
    VendorFactory(user=user)
    for answer in (statement(client, headers, month), statement(client, auth.headers("admin"), month, vendor_id="v")):
        assert answer.status_code == 422, month
        error = answer.get_json()["error"]
        assert error["code"] == "validation_error" and "month" in error["details"]


def test_a_bad_format_is_a_validation_error_and_a_vendor_needs_a_profile(client, auth):
    user, headers = auth.user("vendor")
    answer = statement(client, headers, "2026-11", "xlsx")
    assert answer.status_code == 422 and "format" in answer.get_json()["error"]["details"]
    VendorFactory(user=user)
    assert statement(client, headers, "2026-11").status_code == 200
    _, nobody = auth.user("vendor")
    assert statement(client, nobody, "2026-11").status_code == 404
    assert client.get("/api/vendors/me/statements", headers=nobody).status_code == 404


def _post(kind, seller, amount, at, key, account="paid_out"):
    ledger_service.post(kind, [Line(f"vendor:{seller.id}:stripe_balance", "usd", amount),
                               Line(f"vendor:{seller.id}:{account}", "usd", -amount)],
                        key=key, occurred_at=at, local_type="payout" if kind.startswith("payout") else None,
                        local_id=key, stripe_object_id=f"po_{key}" if kind.startswith("payout") else None)


def test_money_given_back_after_its_month_is_a_credit(client, auth):
    """A payout made in March that fails in April: March shows it paid out, April gives it back as a
    credit (payouts cannot be negative), and the months list both."""
    user, headers = auth.user("vendor")
    seller = VendorFactory(user=user)
    march = datetime(2026, 3, 31, 23, 59, 59, tzinfo=timezone.utc)
    _post("vendor_payment", seller, 5000, march - timedelta(days=20), "sale", account="transfer_clearing")
    _post("payout", seller, -4000, march, "p1")
    _post("payout_failure", seller, 4000, march + timedelta(seconds=1), "p1f")  # April 1st 00:00:00
    db.session.commit()
    [m] = statement(client, headers, "2026-03").get_json()["balances"]
    assert (m["opening"], m["sales"], m["payouts"], m["credits"], m["closing"]) == (0, 5000, 4000, 0, 1000)
    [a] = statement(client, headers, "2026-04").get_json()["balances"]
    assert (a["opening"], a["sales"], a["payouts"], a["credits"], a["closing"]) == (1000, 4000, 0, 4000, 5000)
    lines = statement(client, headers, "2026-04").get_json()["lines"]
    assert [(line["kind"], line["amount"], line["payout_id"]) for line in lines] == [("payout", 4000, "p1f")]
    months = client.get("/api/vendors/me/statements", headers=headers).get_json()["data"]
    assert months == [{"month": "2026-04", "currencies": ["usd"]}, {"month": "2026-03", "currencies": ["usd"]}]


def test_a_dispute_won_the_month_after_it_opened_is_a_credit_then(client, auth, emulator, month):
    from marketplace import outbox
    from tests.integration.test_disputes import top_up

    user, headers = auth.user("vendor")
    seller = vendor(emulator, user=user)
    order = sale(client, auth.headers("shopper"), [seller], [2000], payment_method="pm_card_createDispute",
                 emulator=emulator)
    [dispute] = emu(emulator, "GET", "/v1/disputes")["data"]
    disputes.handle_dispute_created(dispute)
    outbox.relay()
    advance(emulator, 35)
    top_up(emulator, 5000)  # the platform pays the dispute fee: the re-transfer needs other funds
    emu(emulator, "POST", f"/_emulator/disputes/{dispute['id']}/close", outcome="won")
    assert disputes.handle_dispute_closed(dispute).status == "won"
    outbox.relay()
    net = 2000 - fee(order, seller)
    assert ledger_balance(seller) == net

    [opened] = statement(client, headers, month).get_json()["balances"]
    assert (opened["sales"], opened["disputes"], opened["credits"], opened["closing"]) == (2000, net, 0, 0)
    start = datetime.strptime(f"{month}-01", "%Y-%m-%d").replace(tzinfo=timezone.utc)
    won = statement(client, headers, f"{month_after(start):%Y-%m}").get_json()
    [balance] = won["balances"]
    assert (balance["opening"], balance["sales"], balance["disputes"], balance["credits"], balance["closing"]) == (
        0, net, 0, net, net)
    [line] = won["lines"]
    assert (line["kind"], line["amount"], line["order_id"]) == ("dispute", net, order["id"])
    assert line["stripe_id"].startswith("py_")
