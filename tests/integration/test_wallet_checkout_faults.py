"""Wallets and hosted checkout when answers are lost, parameters change between a request and
its retry, a delayed payment fails, a shopper has too many declines: nothing is made twice,
nothing is stuck; and the new flows reconcile to zero."""
import pytest
from sqlalchemy import func, select

from marketplace.auth.models import User
from marketplace.extensions import db
from marketplace.payments.models import CheckoutSession, Payment
from marketplace.wallets import service as wallets
from marketplace.wallets.models import Customer, SavedPaymentMethod
from tests.integration.test_checkout import _events, _open, _order, _pay_on_the_page
from tests.integration.test_wallets import _me, _save
from tests.payments_helpers import assert_balances_match, emu, onboarded_vendor, order_for, settle
from tests.reconciliation_helpers import emulator_now, reconcile
from tests.webhook_helpers import deliver

pytestmark = pytest.mark.needs("emulator")


def _lose_next(emulator, path):
    """Stripe carries the next POST under `path` out, and its answer never arrives."""
    emu(emulator, "POST", "/_emulator/faults", path_prefix=path, mode="lost", count=1, method="POST")


def _sessions_of(emulator, order_id):
    return [s for s in emu(emulator, "GET", "/v1/checkout/sessions", limit=100)["data"]
            if s["client_reference_id"] == order_id]


def test_sessions_take_cards_only_which_are_paid_when_the_session_completes(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [1800])
    session = _open(client, shopper, order["id"])
    stripe_session = emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}")
    assert stripe_session["allowed_payment_method_types"] == ["card"]


def test_a_session_whose_answer_was_lost_is_the_one_a_retry_gets_though_the_shopper_has_a_customer_since(
        client, shopper, emulator):
    """The retry sends the very request the first attempt sent (the shopper's Customer, made
    meanwhile, would have changed it): Stripe answers with the session it made."""
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2400])
    _lose_next(emulator, "/v1/checkout/sessions")
    lost = client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper)
    assert lost.status_code >= 500
    made = _sessions_of(emulator, order["id"])
    assert len(made) == 1 and made[0]["customer"] is None
    _save(client, shopper)  # the shopper's Customer exists now
    session = _open(client, shopper, order["id"])
    assert session["checkout_session_id"] == made[0]["id"]
    assert len(_sessions_of(emulator, order["id"])) == 1
    _pay_on_the_page(session)
    settle(client, emulator)
    assert _order(client, shopper, order["id"])["status"] == "paid"
    assert_balances_match(emulator, order["id"])


def test_parameters_frozen_too_long_ago_are_made_again(client, shopper, emulator, monkeypatch):
    """A first attempt that never reached Stripe, frozen with an expiry now too close: Stripe
    refuses it (keeping nothing for the key), and the same request opens a session with a
    fresh one."""
    from marketplace.stripe_requests import StripeRequest

    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2400])
    emu(emulator, "POST", "/_emulator/faults", path_prefix="/v1/checkout/sessions", mode="error", status=500,
        count=1, method="POST")
    assert client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper).status_code >= 500
    db.session.rollback()
    frozen = db.session.get(StripeRequest, f"checkout-session-{order['id']}-0")
    frozen.params = {**frozen.params, "expires_at": emulator_now(emulator) + 60}
    db.session.commit()
    session = _open(client, shopper, order["id"])
    stripe_session = emu(emulator, "GET", f"/v1/checkout/sessions/{session['checkout_session_id']}")
    assert stripe_session["expires_at"] > emulator_now(emulator) + 30 * 60
    assert len(_sessions_of(emulator, order["id"])) == 1


def test_a_payment_intent_whose_answer_was_lost_is_the_one_a_retry_gets_though_the_shopper_has_a_customer_since(
        client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [3100])
    _lose_next(emulator, "/v1/payment_intents")
    assert client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper).status_code >= 500
    _save(client, shopper)
    retried = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert retried.status_code == 201, retried.get_json()
    intents = emu(emulator, "GET", "/v1/payment_intents", limit=100)["data"]
    assert [i["id"] for i in intents] == [retried.get_json()["payment_intent_id"]]
    confirmed = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"},
                            headers=shopper)
    assert confirmed.status_code == 200 and confirmed.get_json()["status"] == "succeeded"
    settle(client, emulator)
    assert_balances_match(emulator, order["id"])


def test_a_customer_whose_answer_was_lost_is_made_once_though_the_email_changed_since(client, shopper, emulator):
    user_id = _me(client, shopper)
    first_email = db.session.get(User, user_id).email
    _lose_next(emulator, "/v1/customers")
    assert client.post("/api/payment-methods/setup-intent", headers=shopper).status_code >= 500
    db.session.rollback()
    db.session.get(User, user_id).email = "renamed-" + first_email
    db.session.commit()
    assert client.post("/api/payment-methods/setup-intent", headers=shopper).status_code == 201
    made = [c for c in emu(emulator, "GET", "/v1/customers", limit=100)["data"]
            if c["metadata"].get("user_id") == user_id]
    assert len(made) == 1
    db.session.rollback()
    customer = db.session.scalar(select(Customer).where(Customer.user_id == user_id))
    assert customer.stripe_customer_id == made[0]["id"]
    assert made[0]["email"] == customer.email == "renamed-" + first_email  # kept in sync after


def test_a_card_saved_removed_and_saved_again_is_attached_again(client, shopper, emulator):
    """Within Stripe's 24 hours: the second save is a new attach (a new PaymentMethod of the
    test card, attached), not the first attach's answer replayed (the card detached since)."""
    first = _save(client, shopper)
    assert client.delete(f"/api/payment-methods/{first['id']}", headers=shopper).status_code == 204
    again = _save(client, shopper)
    assert again["id"] != first["id"]
    assert [m["id"] for m in client.get("/api/payment-methods", headers=shopper).get_json()["data"]] == [again["id"]]
    customer = db.session.scalar(select(Customer.stripe_customer_id).where(Customer.user_id == _me(client, shopper)))
    assert emu(emulator, "GET", f"/v1/payment_methods/{again['id']}")["customer"] == customer
    assert emu(emulator, "GET", f"/v1/payment_methods/{first['id']}")["customer"] is None


def test_an_attached_card_recorded_by_its_event_meanwhile_is_recorded_once(client, shopper, emulator, monkeypatch):
    """The answer and `payment_method.attached` record the same card at the same time: the
    one that comes second finds it (no unique violation, no 500)."""
    real_get = db.session.get

    def event_in_between(model, ident, *args, **kwargs):
        found = real_get(model, ident, *args, **kwargs)
        if model is SavedPaymentMethod and found is None and str(ident).startswith("pm_"):
            from marketplace.database import utcnow

            monkeypatch.setattr(db.session, "get", real_get)
            with db.engine.begin() as other:  # the webhook's job, in its own transaction
                customer = other.execute(select(Customer.id, Customer.user_id).where(
                    Customer.stripe_customer_id.is_not(None))).one()
                other.execute(SavedPaymentMethod.__table__.insert().values(
                    stripe_payment_method_id=ident, user_id=customer.user_id, customer_id=customer.id,
                    brand="visa", last4="4242", created_at=utcnow()))
        return found

    wallets.ensure_customer(db.session.get(User, _me(client, shopper)))
    original = wallets.record_attached

    def recording(payment_method):
        monkeypatch.setattr(db.session, "get", event_in_between)
        return original(payment_method)

    monkeypatch.setattr(wallets, "record_attached", recording)
    card = _save(client, shopper)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(SavedPaymentMethod)) == 1
    assert card["last4"] == "4242"


def _complete_with_a_failed_delayed_payment(emulator, stripe_session_id):
    """What Stripe shows after a bank debit taken on the hosted page failed: the session
    completed unpaid, its PaymentIntent wanting another payment method. The emulator's page
    takes cards only, which cannot end so: the state is set on it directly."""
    state = emulator.emulator
    with state.lock:
        session = state.store.find(stripe_session_id)
        pi = state.store.find(state.store.find(stripe_session_id)["payment_intent"])
        pi.update(status="requires_payment_method")
        session.update(status="complete", payment_status="unpaid", url=None)
        state.emit("checkout.session.completed", session, account=session["_account"])
        state.emit("checkout.session.async_payment_failed", session, account=session["_account"])


@pytest.mark.parametrize("told_by", ["event", "cancel"])
def test_a_session_whose_delayed_payment_failed_leaves_the_order_payable(client, shopper, emulator, told_by):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2000])
    session = _open(client, shopper, order["id"])
    assert _pay_on_the_page(session, payment_method="pm_card_chargeDeclined").status_code == 402
    _complete_with_a_failed_delayed_payment(emulator, session["checkout_session_id"])
    if told_by == "event":
        settle(client, emulator)
        db.session.rollback()
        assert db.session.scalar(select(CheckoutSession.status)) == "failed"
    # The order is payable, and paid another way.
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert intent.status_code == 201, intent.get_json()
    db.session.rollback()
    assert db.session.scalar(select(CheckoutSession.status)) == "failed"
    confirmed = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"},
                            headers=shopper)
    assert confirmed.status_code == 200 and confirmed.get_json()["order_status"] == "paid"
    settle(client, emulator)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    assert_balances_match(emulator, order["id"])


def test_a_session_still_being_paid_by_a_delayed_method_stops_other_ways(client, shopper, emulator):
    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2000])
    session = _open(client, shopper, order["id"])
    state = emulator.emulator
    with state.lock:  # a bank debit under way: completed, unpaid, its PaymentIntent processing
        stripe_session = state.store.find(session["checkout_session_id"])
        stripe_session.update(status="complete", payment_status="unpaid", url=None)
    refused = client.post(f"/api/orders/{order['id']}/payment-intent", headers=shopper)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "checkout_completed"


def test_a_shopper_with_too_many_declines_cannot_open_a_hosted_checkout(app, client, shopper, emulator):
    app.config["FRAUD_MAX_FAILED_PAYMENTS"] = 2
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1500])
    confirm = f"/api/orders/{order['id']}/confirm"
    for _ in range(2):
        assert client.post(confirm, json={"payment_method": "pm_card_chargeDeclined"},
                           headers=shopper).status_code == 402
    other = order_for(client, shopper, [vendor], [1500])
    refused = client.post(f"/api/orders/{other['id']}/checkout-session", headers=shopper)
    assert refused.status_code == 429 and refused.get_json()["error"]["details"] == {"reason": "failed_payments"}
    assert _sessions_of(emulator, other["id"]) == []


def test_the_wallet_and_checkout_flows_reconcile_to_zero(client, shopper, admin, emulator):
    def vendors(n):  # each order its own vendors: each vendor's balance is its order's share
        return [onboarded_vendor(emulator) for _ in range(n)]

    card = _save(client, shopper)
    assert client.put(f"/api/payment-methods/{card['id']}/default", headers=shopper).status_code == 200
    with_card = order_for(client, shopper, vendors(3), [1500, 2500, 999])
    client.post(f"/api/orders/{with_card['id']}/payment-intent", headers=shopper)
    paid = client.post(f"/api/orders/{with_card['id']}/confirm", json={"save_payment_method": False},
                       headers=shopper)
    assert paid.status_code == 200 and paid.get_json()["status"] == "succeeded", paid.get_json()
    hosted = [order_for(client, shopper, vendors(1), [4200]), order_for(client, shopper, vendors(3), [700, 800, 900])]
    for order in hosted:
        _pay_on_the_page(_open(client, shopper, order["id"]))
    settle(client, emulator)
    for order in [with_card, *hosted]:
        assert _order(client, shopper, order["id"])["status"] == "paid"
        assert_balances_match(emulator, order["id"])
    refund = client.post(f"/api/orders/{hosted[1]['id']}/refunds",
                         json={"reason": "requested_by_customer", "amount": 500}, headers=admin)
    assert refund.status_code == 201, refund.get_json()
    settle(client, emulator)
    now = emulator_now(emulator)
    run = reconcile(client, admin, now - 3600, now + 3600)
    assert run["counts"]["matched"] > 0
    assert {k: v for k, v in run["counts"].items() if k != "matched"} == {
        "missing_in_ledger": 0, "missing_in_stripe": 0, "amount_mismatch": 0}, run["discrepancies"]


def _refuse_next(emulator, path, status=403):
    """Stripe refuses the next POST under `path` without carrying it out, for no parameter."""
    emu(emulator, "POST", "/_emulator/faults", path_prefix=path, mode="error", status=status, count=1, method="POST")


def test_a_refused_try_keeps_the_parameters_a_concurrent_try_sent(client, shopper, emulator, monkeypatch):
    """Tab A is refused (not for its parameters); before A has handled the refusal, tab B
    sends the same request and loses the answer: the parameters stay what was sent, and the
    retry after the shopper got a Customer is answered with the session Stripe made."""
    from marketplace.payments import checkout

    order_id = order_for(client, shopper, [onboarded_vendor(emulator)], [2400])["id"]
    real_create = checkout._create

    def tab_a_then_b(order):
        monkeypatch.setattr(checkout, "_create", real_create)
        _refuse_next(emulator, "/v1/checkout/sessions")
        try:
            return real_create(order)  # tab A: refused
        finally:
            _lose_next(emulator, "/v1/checkout/sessions")
            with pytest.raises(Exception):  # tab B, once the order's lock is free: made, answer lost
                real_create(order)

    monkeypatch.setattr(checkout, "_create", tab_a_then_b)
    assert client.post(f"/api/orders/{order_id}/checkout-session", headers=shopper).status_code >= 500
    made = _sessions_of(emulator, order_id)
    assert len(made) == 1
    _save(client, shopper)
    session = _open(client, shopper, order_id)
    assert session["checkout_session_id"] == made[0]["id"]


def test_a_replayed_session_past_its_expiry_is_not_handed_out(client, shopper, emulator, monkeypatch):
    from datetime import timedelta

    from marketplace.payments import checkout

    order = order_for(client, shopper, [onboarded_vendor(emulator)], [2400])
    _lose_next(emulator, "/v1/checkout/sessions")
    assert client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper).status_code >= 500
    later = checkout.utcnow() + timedelta(hours=25)
    monkeypatch.setattr(checkout, "utcnow", lambda: later)
    answer = client.post(f"/api/orders/{order['id']}/checkout-session", headers=shopper)
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "payment_window_closing"
    db.session.rollback()
    assert db.session.scalar(select(CheckoutSession.status)) == "expired"


def test_a_customer_refused_for_its_email_is_asked_again_with_the_corrected_one(client, shopper, emulator):
    user_id = _me(client, shopper)
    good = db.session.get(User, user_id).email
    db.session.get(User, user_id).email = "shopper@localhost"
    db.session.commit()
    assert client.post("/api/payment-methods/setup-intent", headers=shopper).status_code == 422
    db.session.rollback()
    db.session.get(User, user_id).email = good
    db.session.commit()
    assert client.post("/api/payment-methods/setup-intent", headers=shopper).status_code == 201
    made = [c for c in emu(emulator, "GET", "/v1/customers", limit=100)["data"]
            if c["metadata"].get("user_id") == user_id]
    assert [c["email"] for c in made] == [good]


def test_frozen_parameters_are_reaped_after_two_days(app):
    from datetime import timedelta

    from marketplace import stripe_requests
    from marketplace.database import utcnow

    stripe_requests.freeze("old", lambda: {"a": 1})
    stripe_requests.freeze("new", lambda: {"b": 2})
    db.session.get(StripeRequestModel(), "old").created_at = utcnow() - timedelta(hours=49)
    db.session.commit()
    assert stripe_requests.reap() == 1
    assert stripe_requests.frozen("old") is None and stripe_requests.frozen("new") == {"b": 2}


def StripeRequestModel():
    from marketplace.stripe_requests import StripeRequest

    return StripeRequest
