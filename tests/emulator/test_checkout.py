"""Stripe Checkout: sessions in payment mode and the emulator's hosted page paying them."""
import json
import time

import pytest
import requests
import stripe

from .helpers import balance, bts, event_types, opts

pytestmark = pytest.mark.emulator_only  # the emulator's hosted page stands for Stripe's
DAY = 86400
SUCCESS = "https://shop.example/paid?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://shop.example/cart"


def _session(client, amount=1000, quantity=1, **params):
    if "customer" not in params:
        params.setdefault("customer_email", "shopper@example.com")
    params.setdefault("mode", "payment")
    return client.v1.checkout.sessions.create(params=dict(
        success_url=SUCCESS, cancel_url=CANCEL, line_items=[{
            "quantity": quantity, "price_data": {
                "currency": "usd", "unit_amount": amount,
                "product_data": {"name": "Teapot"}}}], **params))


def _visit(session, **query):
    """The shopper on the session's hosted page; the page's answer (not followed)."""
    return requests.get(session.url, params=query, allow_redirects=False, timeout=30)


def _hook_types(emu, receiver):
    assert emu.wait_idle(5)
    return receiver.types()


def test_a_session_before_payment(client):
    session = _session(client, 1250, quantity=2, client_reference_id="order_1",
                       metadata={"order_id": "order_1"})
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid",
                                                                        "payment")
    assert session.payment_intent is None  # made when the shopper pays
    assert (session.amount_total, session.currency) == (2500, "usd")
    assert session.customer is None and session.customer_email == "shopper@example.com"
    assert session.customer_creation == "if_required" and session.customer_details is None
    assert session.url.endswith("/_emulator/checkout/" + session.id)
    assert session.expires_at - int(time.time()) in range(DAY - 60, DAY + 60)
    items = client.v1.checkout.sessions.line_items.list(session.id).data
    assert [(i.description, i.quantity, i.amount_total, i.price.unit_amount) for i in items] \
        == [("Teapot", 2, 2500, 1250)]
    expanded = client.v1.checkout.sessions.retrieve(session.id, params={
        "expand": ["line_items"]})
    assert expanded.line_items.data[0].id == items[0].id


def test_one_vendor_session_pays_the_destination(client, vendor, emu, receiver, control):
    session = _session(client, 2000, payment_intent_data={
        "transfer_data": {"destination": vendor}, "application_fee_amount": 200,
        "metadata": {"order_id": "o1"}, "receipt_email": "r@example.com"})
    resp = _visit(session)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://shop.example/paid?session=" + session.id
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status, paid.url) == ("complete", "paid", None)
    assert paid.customer_details.email == "shopper@example.com"
    pi = client.v1.payment_intents.retrieve(paid.payment_intent, params={
        "expand": ["latest_charge"]})
    assert pi.status == "succeeded" and pi.amount_received == 2000
    assert pi.metadata["order_id"] == "o1" and pi.application_fee_amount == 200
    assert pi.transfer_data.destination == vendor
    charge = pi.latest_charge
    assert charge.receipt_email == "r@example.com" and charge.billing_details.email \
        == "shopper@example.com"
    assert charge.balance_transaction is None  # asynchronous capture: settles a moment later
    control.post("settle")
    assert bts(client) == [("charge", 2000, 88, 1912, "charge", "ch_"),
                           ("transfer", -2000, 0, -2000, "transfer", "tr_"),
                           ("application_fee", 200, 0, 200, "platform_earning", "fee")]
    assert bts(client, vendor) == [("payment", 2000, 200, 1800, "charge", "py_")]
    assert balance(client) == (0, 112) and balance(client, vendor) == (0, 1800)
    assert event_types(client) == [
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
        "checkout.session.completed", "transfer.created", "application_fee.created",
        "charge.updated"]
    completed = client.v1.events.list(params={"type": "checkout.session.completed"}).data[0]
    assert completed.data.object.payment_intent == pi.id
    assert completed.data.object.payment_status == "paid"
    assert "checkout.session.completed" in _hook_types(emu, receiver)
    listed = client.v1.checkout.sessions.list(params={"payment_intent": pi.id}).data
    assert [s.id for s in listed] == [session.id]


def test_a_transfer_group_session(client, control):
    session = _session(client, 3000, payment_intent_data={"transfer_group": "order_9"})
    assert _visit(session, payment_method="pm_card_mastercard").status_code == 302
    pi = client.v1.payment_intents.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    assert pi.transfer_group == "order_9" and pi.transfer_data is None
    charge = client.v1.charges.list(params={"transfer_group": "order_9"}).data[0]
    assert charge.payment_method_details.card.brand == "mastercard"
    control.post("settle")
    assert bts(client) == [("charge", 3000, 117, 2883, "charge", "ch_")]


def test_the_page_pays_once(client):
    session = _session(client)
    assert _visit(session).status_code == 302
    again = _visit(session)
    assert again.status_code == 302 and again.headers["Location"].startswith(
        "https://shop.example/paid")
    assert len(client.v1.payment_intents.list().data) == 1
    assert event_types(client).count("checkout.session.completed") == 1
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.expire(session.id)
    assert err.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
        "Session has a status of `complete`.")


def test_cancel_and_decline_leave_the_session_open(client):
    session = _session(client)
    resp = _visit(session, outcome="cancel")
    assert resp.status_code == 302 and resp.headers["Location"] == CANCEL
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    declined = _visit(session, payment_method="pm_card_chargeDeclined")
    assert declined.status_code == 402
    assert json.loads(declined.text)["error"]["decline_code"] == "generic_decline"
    current = client.v1.checkout.sessions.retrieve(session.id)
    assert (current.status, current.payment_status) == ("open", "unpaid")
    assert "checkout.session.completed" not in event_types(client)
    assert _visit(session).status_code == 302  # the same PaymentIntent, paid this time
    assert client.v1.checkout.sessions.retrieve(session.id).payment_intent \
        == current.payment_intent
    assert client.v1.payment_intents.retrieve(current.payment_intent).status == "succeeded"


def test_a_card_needing_authentication_is_authenticated_on_the_page(client):
    session = _session(client)
    assert _visit(session, payment_method="pm_card_authenticationRequired").status_code == 302
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_customer_session_saves_the_card(client):
    customer = client.v1.customers.create(params={"email": "c@example.com"})
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "customer": customer.id, "success_url": SUCCESS,
        "line_items": [{"quantity": 1, "price_data": {
            "currency": "usd", "unit_amount": 500, "product_data": {"name": "Tea"}}}],
        "payment_intent_data": {"setup_future_usage": "off_session"}})
    assert session.customer == customer.id and session.customer_creation is None
    _visit(session)
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert paid.customer_details.email == "c@example.com"
    pi = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert pi.customer == customer.id
    assert client.v1.payment_methods.retrieve(pi.payment_method).customer == customer.id
    assert [s.id for s in client.v1.checkout.sessions.list(
        params={"customer": customer.id}).data] == [session.id]


def test_expire_by_endpoint_and_by_clock(client, control, emu, receiver):
    first = _session(client)
    expired = client.v1.checkout.sessions.expire(first.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert _visit(first).status_code == 410
    second = _session(client, expires_at=int(time.time()) + 3600)
    control.advance(1800)
    assert client.v1.checkout.sessions.retrieve(second.id).status == "open"
    control.advance(1801)
    assert client.v1.checkout.sessions.retrieve(second.id).status == "expired"
    assert event_types(client) == ["checkout.session.expired", "checkout.session.expired"]
    assert _hook_types(emu, receiver).count("checkout.session.expired") == 2


def test_expiring_a_session_cancels_its_payment_intent_which_cannot_be_canceled_alone(client, control):
    session = _session(client)
    assert _visit(session, payment_method="pm_card_chargeDeclined").status_code == 402
    pi = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.cancel(pi)
    assert "Expire the Checkout Session instead" in err.value.user_message
    client.v1.checkout.sessions.expire(session.id)
    canceled = client.v1.payment_intents.retrieve(pi)
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "expired")
    assert event_types(client)[-2:] == ["payment_intent.canceled", "checkout.session.expired"]
    by_clock = _session(client, expires_at=int(time.time()) + 3600)
    _visit(by_clock, payment_method="pm_card_chargeDeclined")
    control.advance(3601)
    assert client.v1.checkout.sessions.retrieve(by_clock.id).status == "expired"
    assert client.v1.payment_intents.retrieve(
        client.v1.checkout.sessions.retrieve(by_clock.id).payment_intent).status == "canceled"


def test_allowed_payment_method_types_filter_what_the_page_offers(client):
    assert _session(client).allowed_payment_method_types is None
    cards = _session(client, allowed_payment_method_types=["card"])
    assert cards.allowed_payment_method_types == ["card"] and cards.payment_method_types == ["card"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        _session(client, allowed_payment_method_types=["sepa_debit"])
    assert err.value.param == "allowed_payment_method_types"
    assert "No valid payment method types" in err.value.user_message


def test_session_parameters_are_checked(client, vendor):
    now = int(time.time())
    for params, message in [
        ({"expires_at": now + 600}, "at least 30 minutes"),
        ({"expires_at": now + 2 * DAY}, "less than 24 hours"),
        ({"customer": "cus_missing"}, "No such customer"),
        ({"payment_intent_data": {"application_fee_amount": 100}}, "application_fee_amount"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as err:
            _session(client, **params)
        assert message in err.value.user_message, params
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params={"mode": "payment", "line_items": [
            {"price_data": {"currency": "usd", "unit_amount": 500,
                            "product_data": {"name": "x"}}}]})
    assert err.value.code == "parameter_missing" and err.value.param == "line_items[0][quantity]"
    with pytest.raises(stripe.InvalidRequestError) as err:
        _session(client, customer=client.v1.customers.create().id,
                 customer_email="shopper@example.com")
    assert "customer, customer_email" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as err:
        _session(client, mode="subscription")
    assert err.value.code == "emulator_unsupported_parameter"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.retrieve("cs_test_missing")
    assert err.value.http_status == 404


def test_a_session_on_a_connected_account(client, vendor):
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": SUCCESS, "line_items": [{
            "quantity": 1, "price_data": {"currency": "usd", "unit_amount": 1500,
                                          "product_data": {"name": "Mug"}}}],
        "payment_intent_data": {"application_fee_amount": 150}}, options=opts(vendor))
    assert _visit(session).status_code == 302
    paid = client.v1.checkout.sessions.retrieve(session.id, options=opts(vendor))
    pi = client.v1.payment_intents.retrieve(paid.payment_intent, options=opts(vendor))
    assert pi.status == "succeeded" and pi.application_fee_amount == 150
