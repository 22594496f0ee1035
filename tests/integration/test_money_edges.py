"""Money movements at their edges: an admin's retry after the key expired, a driver whose
lease ran out, Dashboard refunds Stripe reversed itself, a replayed answer, inquiries, and
a sweep that waiting movements must not fill. Each test asserts what must hold."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from marketplace import outbox, stripe_gateway
from marketplace.database import new_id, utcnow
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.movements.engine import Kind
from marketplace.movements.models import Movement
from marketplace.orders.models import Order
from marketplace.payments import disputes, refunds
from marketplace.payments.models import Dispute, Payment, Refund
from marketplace.payouts import service as payouts
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, order_for, pay, settle, stripe_balance
from tests.payouts_helpers import advance, follow_emulator_clock, stripe_payouts, vendor
from tests.reconciliation_helpers import emulator_now, reconcile

pytestmark = pytest.mark.needs("emulator")


def _due_now():
    db.session.execute(update(Movement).where(Movement.status.in_(("planned", "unknown")))
                       .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def _drive_all(client, emulator, rounds=3):
    for _ in range(rounds):
        outbox.relay()
        _due_now()
        engine.sweep()
        settle(client, emulator)


def _answer_lost(monkeypatch, name):
    real = getattr(stripe_gateway, name)

    def lost(*args, **kwargs):
        real(*args, **kwargs)  # Stripe makes it; its answer never arrives
        raise stripe_gateway.ServiceUnavailable("unreachable", code="stripe_unavailable")

    monkeypatch.setattr(stripe_gateway, name, lost)
    return real


def _unreachable(monkeypatch, name):
    real = getattr(stripe_gateway, name)

    def unreachable(*args, **kwargs):
        raise stripe_gateway.ServiceUnavailable("unreachable", code="stripe_unavailable")

    monkeypatch.setattr(stripe_gateway, name, unreachable)
    return real


def _stuck(monkeypatch, create: str, lookup: str, kind: str, make) -> Movement:
    """`make()` (True when it went through) with every answer of `create` lost and every
    `lookup` failing, until the movement needs attention; then Stripe answers again."""
    real_create, real_lookup = _answer_lost(monkeypatch, create), _unreachable(monkeypatch, lookup)
    assert make()
    _due_now()
    engine.sweep()
    monkeypatch.setattr(stripe_gateway, create, real_create)
    monkeypatch.setattr(stripe_gateway, lookup, real_lookup)
    movement = db.session.scalar(select(Movement).where(Movement.kind == kind))
    assert movement.status == "needs_attention"
    return movement


def _reconciles(client, admin, emulator):
    now = emulator_now(emulator)
    run = reconcile(client, admin, now - 3600, now + 3600)
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]


def test_an_admin_retry_after_the_key_expired_looks_before_sending(client, shopper, admin, emulator,
                                                                   stripe_app, monkeypatch):
    """Every answer lost and every lookup failing: the movement needs attention. An admin's
    retry, after Stripe forgot the key, looks before sending: found, not made again."""
    stripe_app.config["MOVEMENT_MAX_ATTEMPTS"] = 2
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [5000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    body = {"reason": "requested_by_customer", "amount": 1000}
    movement = _stuck(monkeypatch, "create_refund", "list_refunds", "refund", lambda: client.post(
        f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201)
    advance(emulator, 1.1)  # Stripe has forgotten the key
    movement.first_sent_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert client.post(f"/api/admin/movements/{movement.id}/retry", headers=admin).status_code == 202
    outbox.relay()
    engine.sweep()
    made = emu(emulator, "GET", "/v1/refunds", limit=100)["data"]
    assert [r["amount"] for r in made] == [1000]  # found, not made again
    db.session.rollback()
    assert db.session.get(Movement, movement.id).stripe_id == made[0]["id"]


def test_a_payout_retried_after_the_key_expired_is_not_paid_twice(client, shopper, admin, emulator,
                                                                  stripe_app, monkeypatch):
    follow_emulator_clock(monkeypatch, emulator)
    stripe_app.config["MOVEMENT_MAX_ATTEMPTS"] = 2
    seller = vendor(emulator)
    assert pay(client, shopper, order_for(client, shopper, [seller], [5000])["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)
    movement = _stuck(monkeypatch, "create_payout", "list_payouts", "payout",
                      lambda: payouts.run_now().status == "completed")
    more = order_for(client, shopper, [seller], [5000])  # money on the account: a resend would be paid
    assert pay(client, shopper, more["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)
    movement.first_sent_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert client.post(f"/api/admin/movements/{movement.id}/retry", headers=admin).status_code == 202
    outbox.relay()
    engine.sweep()
    assert len(stripe_payouts(emulator, seller)) == 1


def test_a_driver_whose_lease_ran_out_does_not_record_again(client, shopper, admin, emulator, monkeypatch):
    """Driver A's reversal answer comes after its lease ran out and driver B recorded the
    reversal (and, the refund having failed meanwhile, gave it back): A records nothing."""
    sellers = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, sellers, [2000, 1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    real = stripe_gateway.create_transfer_reversal
    state = {"done": False}

    def slow_answer(transfer_id, params, key):
        made = real(transfer_id, params, key)
        if state["done"]:
            return made
        state["done"] = True
        movement_id = params["metadata"]["movement_id"]
        refund = db.session.scalar(select(Refund))
        emu(emulator, "POST", f"/_emulator/refunds/{refund.stripe_refund_id}/fail")
        db.session.rollback()
        refunds.handle_refund_failed({"id": refund.stripe_refund_id})
        db.session.execute(update(Movement).where(Movement.id == movement_id)
                           .values(locked_until=utcnow() - timedelta(seconds=1)))  # A's lease ran out
        db.session.commit()
        assert engine.drive(movement_id) == "succeeded"  # driver B: the sweep
        return made  # A's answer arrives only now

    monkeypatch.setattr(stripe_gateway, "create_transfer_reversal", slow_answer)
    body = {"reason": "requested_by_customer", "amount": 1500}
    assert client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201
    monkeypatch.setattr(stripe_gateway, "create_transfer_reversal", real)
    other = order_for(client, shopper, [onboarded_vendor(emulator)], [20000])  # the platform earns more
    assert pay(client, shopper, other["id"], emulator=emulator).status_code == 200
    advance(emulator, 10)
    _drive_all(client, emulator, rounds=4)
    db.session.rollback()
    reversals = list(db.session.scalars(select(Movement).where(Movement.kind == "transfer_reversal",
                                                                Movement.status == "succeeded")))
    retransfers = list(db.session.scalars(select(Movement).where(Movement.kind == "retransfer")))
    assert len(reversals) == 1 and [m.amount for m in retransfers] == [reversals[0].amount]
    assert {m.status for m in retransfers} == {"succeeded"}
    _reconciles(client, admin, emulator)


@pytest.mark.parametrize("with_fee", [True, False])
def test_a_dashboard_refund_stripe_reversed_itself_takes_the_share_once(client, shopper, admin, emulator, with_fee):
    seller = onboarded_vendor(emulator)
    order = order_for(client, shopper, [seller], [1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    charge = db.session.scalar(select(Payment)).stripe_charge_id
    before = stripe_balance(emulator, seller.stripe_account_id)
    emu(emulator, "POST", "/v1/refunds", charge=charge, amount=400, reverse_transfer="true",
        **({"refund_application_fee": "true"} if with_fee else {}))  # made in the Dashboard
    _drive_all(client, emulator)
    after = stripe_balance(emulator, seller.stripe_account_id)
    fee = 40 if with_fee else 0  # 10 % of the 400 refunded, returned to the vendor with the fee
    assert before - after == 400 - fee
    db.session.rollback()
    reversal = db.session.scalar(select(Movement).where(Movement.kind == "transfer_reversal"))
    assert (reversal.status, reversal.amount, reversal.by_stripe) == ("succeeded", 400 - fee, True)
    assert db.session.scalar(select(Refund)).status == "succeeded"
    from marketplace.ledger import service as ledger

    assert ledger.balance(f"vendor:{seller.id}:stripe_balance", "usd") == after
    assert ledger.balance("platform:stripe_balance", "usd") == stripe_balance(emulator)
    _reconciles(client, admin, emulator)


def test_a_replayed_pending_answer_never_takes_a_refund_back(client, shopper, admin, emulator, monkeypatch):
    """The first answer (pending) is lost; refund.updated says succeeded; the retry's replay
    of the first answer says pending again: the refund stays succeeded."""
    emu(emulator, "POST", "/v1/balance_settings", **{"payments[debit_negative_balances]": "false"})
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    real = _answer_lost(monkeypatch, "create_refund")
    body = {"reason": "requested_by_customer", "amount": 400}
    assert client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201
    monkeypatch.setattr(stripe_gateway, "create_refund", real)
    [made] = emu(emulator, "GET", "/v1/refunds", limit=100)["data"]
    assert made["status"] == "pending"
    other = order_for(client, shopper, [onboarded_vendor(emulator), onboarded_vendor(emulator)], [30000, 30000])
    assert pay(client, shopper, other["id"], emulator=emulator).status_code == 200  # funds arrive
    settle(client, emulator)
    db.session.rollback()
    assert db.session.scalar(select(Refund)).stripe_status == "succeeded"
    _drive_all(client, emulator)
    db.session.rollback()
    refund = db.session.scalar(select(Refund))
    assert (refund.stripe_status, refund.status) == ("succeeded", "succeeded")


def test_an_inquiry_takes_nothing_from_the_vendor(client, shopper, admin, emulator):
    """An inquiry debits nothing: no recovery; closed, the order is paid again."""
    seller = onboarded_vendor(emulator)
    order = order_for(client, shopper, [seller], [2000])
    assert pay(client, shopper, order["id"], "pm_card_createDisputeInquiry", emulator=emulator).status_code == 200
    before = stripe_balance(emulator, seller.stripe_account_id)
    [dispute] = emu(emulator, "GET", "/v1/disputes")["data"]
    assert dispute["status"].startswith("warning")
    disputes.handle_dispute_created(dispute)
    _drive_all(client, emulator)
    assert stripe_balance(emulator, seller.stripe_account_id) == before
    assert db.session.scalar(select(Movement).where(Movement.kind == "transfer_reversal")) is None
    emu(emulator, "POST", f"/v1/disputes/{dispute['id']}/close")
    disputes.handle_dispute_closed(dispute)
    _drive_all(client, emulator)
    db.session.rollback()
    assert db.session.scalar(select(Dispute)).status == "warning_closed"
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "paid"
    assert stripe_balance(emulator, seller.stripe_account_id) == before


def test_movements_waiting_for_a_stuck_one_never_hold_up_the_sweep(app, monkeypatch):
    """200 movements wait for one that needs attention: the sweep still reaches the others."""
    monkeypatch.setitem(engine.KINDS, "fee_refund", Kind(
        send=lambda m: {"id": "fr_" + m.id}, find=lambda m: None, record=lambda m, r: None))
    old = utcnow() - timedelta(days=1)
    stuck = Movement(id=new_id("mov"), kind="fee_refund", status="needs_attention", amount=1, currency="usd",
                     next_attempt_at=old, first_sent_at=old, attempts=10)
    db.session.add(stuck)
    db.session.flush()
    for _ in range(200):
        db.session.add(Movement(id=new_id("mov"), kind="fee_refund", status="planned", amount=1, currency="usd",
                                after_id=stuck.id, next_attempt_at=utcnow() - timedelta(hours=1)))
    other = Movement(id=new_id("mov"), kind="fee_refund", status="unknown", amount=1, currency="usd",
                     next_attempt_at=utcnow() - timedelta(seconds=1), first_sent_at=utcnow(), attempts=1)
    db.session.add(other)
    db.session.commit()
    for _ in range(3):  # three minutes of the worker's sweep
        engine.sweep()
    assert db.session.get(Movement, other.id).status == "succeeded"


def test_a_misconfigured_key_asks_for_attention_and_never_fails_a_refund(client, shopper, admin, emulator,
                                                                         monkeypatch):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200

    def unauthorized(*args, **kwargs):
        raise stripe_gateway.StripeFailure()  # what a 401/403 from Stripe becomes

    monkeypatch.setattr(stripe_gateway, "create_refund", unauthorized)
    body = {"reason": "requested_by_customer", "amount": 300}
    answer = client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin)
    assert answer.status_code == 201 and answer.get_json()["status"] == "pending"
    db.session.rollback()
    assert db.session.scalar(select(Movement).where(Movement.kind == "refund")).status == "needs_attention"
    assert db.session.scalar(select(Refund)).status == "pending"  # its reservation is kept


def test_a_recording_that_breaks_is_retried_never_taken_for_a_refusal(client, shopper, admin, emulator,
                                                                       monkeypatch):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    real = refunds.record
    monkeypatch.setattr(refunds, "record", lambda m, made: (_ for _ in ()).throw(RuntimeError("bug")))
    body = {"reason": "requested_by_customer", "amount": 300}
    assert client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201
    db.session.rollback()
    movement = db.session.scalar(select(Movement).where(Movement.kind == "refund"))
    assert movement.status == "unknown" and "not recorded" in movement.last_error
    monkeypatch.setattr(refunds, "record", real)
    _drive_all(client, emulator)
    db.session.rollback()
    assert [r["amount"] for r in emu(emulator, "GET", "/v1/refunds", limit=100)["data"]] == [300]
    assert db.session.scalar(select(Refund)).status == "succeeded"


@pytest.mark.parametrize("what", ["transfer", "refund"])
def test_what_stripe_shows_is_recorded_even_after_every_answer_was_lost(client, shopper, admin, emulator,
                                                                        stripe_app, what):
    """Every attempt's answer lost (the movement needs attention), but Stripe made it: its
    event (transfer.created, charge.refunded) names the movement, which records it at once;
    nobody is asked to retry what was made."""
    stripe_app.config["MOVEMENT_MAX_ATTEMPTS"] = 1
    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [1200, 800])
    path = "/v1/transfers" if what == "transfer" else "/v1/refunds"
    if what == "refund":
        assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    emu(emulator, "POST", "/_emulator/faults", path_prefix=path, mode="lost", count=1, method="POST")
    if what == "transfer":
        assert pay(client, shopper, order["id"]).status_code == 200
    else:
        body = {"reason": "requested_by_customer", "amount": 500}
        assert client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201
    db.session.rollback()
    stuck = db.session.scalar(select(Movement).where(Movement.kind == what))
    assert stuck.status == "needs_attention" and stuck.stripe_id is None
    settle(client, emulator)  # Stripe's events reach the app
    _drive_all(client, emulator)
    db.session.rollback()
    assert db.session.get(Movement, stuck.id).status == "succeeded"
    assert db.session.get(Movement, stuck.id).stripe_id is not None
    if what == "transfer":
        assert sorted(t["amount"] for t in emu(emulator, "GET", "/v1/transfers")["data"]) == sorted(
            s.vendor_net for s in db.session.get(Order, order["id"]).splits)
    else:
        assert [r["amount"] for r in emu(emulator, "GET", "/v1/refunds", limit=100)["data"]] == [500]
        assert db.session.scalar(select(Refund)).status == "succeeded"
    assert engine.needing_attention() == []
    assert_balances_match(emulator, order["id"])
    _reconciles(client, admin, emulator)


def test_a_refund_planned_while_its_transfer_is_recorded_neither_waits_nor_deadlocks(
        client, shopper, admin, emulator, stripe_app, pg_only, monkeypatch):
    """A driver recording a transfer holds the movement's row, then needs the order; a refund
    holds the order, then plans a reversal whose foreign key points at that row. The row's
    lock lets the reversal be planned: no deadlock (the chaos test found one: a 500)."""
    import threading
    import time

    from marketplace.payments import transfers

    vendors = [onboarded_vendor(emulator), onboarded_vendor(emulator)]
    order = order_for(client, shopper, vendors, [3000, 2000])
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/transfers", mode="lost", count=1, method="POST")
    assert pay(client, shopper, order["id"]).status_code == 200  # its events not delivered yet
    db.session.rollback()
    [open_one] = db.session.scalars(select(Movement).where(Movement.kind == "transfer", Movement.status == "unknown"))
    _due_now()
    holding = threading.Event()
    real = transfers.record

    def slow_record(m, transfer, payment):  # the driver holds the row while the refund is planned
        holding.set()
        time.sleep(1.5)
        real(m, transfer, payment)  # then it needs the order

    monkeypatch.setattr(transfers, "record", slow_record)
    outcome = {}

    def driver():
        with stripe_app.app_context():
            outcome["status"] = engine.drive(open_one.id)
            db.session.remove()

    thread = threading.Thread(target=driver)
    thread.start()
    assert holding.wait(10)
    answer = client.post(f"/api/orders/{order['id']}/refunds", json={"reason": "requested_by_customer"},
                         headers=admin)
    thread.join(15)
    assert answer.status_code == 201, answer.get_json()  # not a deadlock's 500
    assert outcome["status"] == "succeeded"  # nor the recording's failure
    monkeypatch.setattr(transfers, "record", real)
    _drive_all(client, emulator)
    db.session.rollback()
    assert db.session.scalar(select(Refund)).status == "succeeded"
    assert_balances_match(emulator, order["id"])


def test_a_retry_never_rests_on_stripe_still_knowing_the_key(client, shopper, admin, emulator):
    """A refund's answer lost; by the retry Stripe has forgotten the key (here its clock moved
    two days while ours did not; in life, a key pruned early or a retry after a long outage).
    The retry looks first: one refund at Stripe, never two."""
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [4000])
    assert pay(client, shopper, order["id"], emulator=emulator).status_code == 200
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/refunds", mode="lost", count=1, method="POST")
    body = {"reason": "requested_by_customer", "amount": 1500}
    assert client.post(f"/api/orders/{order['id']}/refunds", json=body, headers=admin).status_code == 201
    db.session.rollback()
    assert db.session.scalar(select(Movement).where(Movement.kind == "refund")).status == "unknown"
    advance(emulator, 2)  # Stripe no longer knows the key
    _due_now()
    engine.sweep()
    db.session.rollback()
    assert [r["amount"] for r in emu(emulator, "GET", "/v1/refunds", limit=100)["data"]] == [1500]
    assert db.session.scalar(select(Movement).where(Movement.kind == "refund")).status == "succeeded"
    _drive_all(client, emulator)
    assert_balances_match(emulator, order["id"])
