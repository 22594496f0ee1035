"""PaymentIntent life cycle, test cards, validation errors and list pagination."""
import pytest
import requests
import stripe

from .helpers import bts, event_types, opts, pay


@pytest.mark.emulator_only  # a fresh platform account
def test_declines_keep_last_payment_error(client):
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm="pm_card_chargeDeclinedInsufficientFunds")
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    error = err.value.error
    assert error.decline_code == "insufficient_funds" and error.type == "card_error"
    pi = client.v1.payment_intents.retrieve(error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == "insufficient_funds"
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed" and charge.balance_transaction is None
    assert bts(client) == []
    assert event_types(client) == ["payment_intent.created", "charge.failed",
                                   "payment_intent.payment_failed"]
    # retry with a good card on the same intent
    pi = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert pi.status == "succeeded" and pi.last_payment_error is None
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm="pm_card_chargeDeclined")
    assert err.value.error.decline_code == "generic_decline"


def test_three_d_secure_via_control(client, control):
    pi = pay(client, 1000, pm="pm_card_authenticationRequired")
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    assert pi.latest_charge is None
    control.post("payment_intents/%s/authenticate" % pi.id, outcome="succeed")
    pi = client.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "succeeded" and pi.latest_charge.startswith("ch_")
    assert "payment_intent.requires_action" in event_types(client)


def test_three_d_secure_failure_and_redirect(client, control, server):
    pi = pay(client, 1000, pm="pm_card_authenticationRequired",
             return_url="https://shop.example/return")
    assert pi.next_action.type == "redirect_to_url"
    control.post("payment_intents/%s/authenticate" % pi.id, outcome="fail")
    pi = client.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "payment_intent_authentication_failure"
    pi = client.v1.payment_intents.confirm(pi.id, params={
        "payment_method": "pm_card_authenticationRequired",
        "return_url": "https://shop.example/return"})
    resp = requests.get(pi.next_action.redirect_to_url.url, allow_redirects=False)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://shop.example/return?payment_intent=" + pi.id
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


def test_confirming_again_never_completes_authentication(client, control):
    pi = pay(client, 1000, pm="pm_card_authenticationRequired")
    first = pi.next_action.use_stripe_sdk.stripe_js
    pi = client.v1.payment_intents.confirm(pi.id, params={
        "payment_method": "pm_card_authenticationRequired"})
    assert pi.status == "requires_action" and pi.latest_charge is None  # a new attempt
    assert client.v1.charges.list(params={"payment_intent": pi.id}).data == []
    control.post("payment_intents/%s/authenticate" % pi.id)  # only the customer can
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    assert first


def test_manual_capture_partial_and_cancel(client, control, vendor):
    pi = client.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "capture_method": "manual",
        "payment_method": "pm_card_visa", "transfer_data": {"destination": vendor},
        "application_fee_amount": 200, "metadata": {"order": "9"},
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}})
    assert pi.status == "requires_confirmation" and pi.metadata["order"] == "9"
    pi = client.v1.payment_intents.confirm(pi.id)
    assert pi.status == "requires_capture" and pi.amount_capturable == 2000
    assert bts(client) == []
    pi = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500,
                                                          "application_fee_amount": 150})
    assert pi.status == "succeeded" and pi.amount_received == 1500
    control.post("settle")
    assert bts(client)[0] == ("charge", 1500, 74, 1426, "charge", "ch_")
    assert bts(client, vendor) == [("payment", 1500, 150, 1350, "charge", "py_")]
    other = client.v1.payment_intents.create(params={
        "amount": 700, "currency": "usd", "capture_method": "manual",
        "payment_method": "pm_card_visa", "confirm": True,
        "return_url": "https://shop.example/return"})
    other = client.v1.payment_intents.cancel(other.id, params={
        "cancellation_reason": "abandoned"})
    assert other.status == "canceled" and other.cancellation_reason == "abandoned"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.capture(other.id)
    assert err.value.code == "payment_intent_unexpected_state"


@pytest.mark.emulator_only  # a fresh platform account
def test_update_and_list_pagination(client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert pi.status == "requires_payment_method"
    pi = client.v1.payment_intents.update(pi.id, params={
        "amount": 1200, "metadata": {"a": "1"}, "description": "cart"})
    assert (pi.amount, pi.metadata["a"], pi.description) == (1200, "1", "cart")
    ids = [pi.id] + [client.v1.payment_intents.create(params={
        "amount": 100 + i, "currency": "usd"}).id for i in range(24)]
    page = client.v1.payment_intents.list(params={"limit": 10})
    assert page.has_more and page.url == "/v1/payment_intents"
    seen = [p.id for p in page.auto_paging_iter()]
    assert seen == list(reversed(ids))
    older = client.v1.payment_intents.list(params={"limit": 5, "ending_before": ids[3]})
    assert [p.id for p in older.data] == list(reversed(ids[4:9]))
    back = [p.id for p in older.auto_paging_iter()]
    assert back == ids[4:]
    assert len(client.v1.payment_intents.list(params={"limit": 100}).data) == 25


def test_validation_errors(client):
    cases = [
        ({"amount": 49, "currency": "usd"}, "amount_too_small"),
        ({"amount": 29, "currency": "gbp"}, "amount_too_small"),
        ({"amount": 49, "currency": "jpy"}, "amount_too_small"),
        ({"amount": 100000000, "currency": "usd"}, "amount_too_large"),
        ({"amount": 1005, "currency": "kwd"}, "invalid_amount"),
        ({"currency": "usd"}, "parameter_missing"),
        ({"amount": 1000, "currency": "usd", "colour": "red"}, "parameter_unknown"),
        ({"amount": 1000, "currency": "xyz"}, "parameter_invalid"),
        ({"amount": "ten", "currency": "usd"}, "parameter_invalid_integer"),
    ]
    for params, code in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.payment_intents.create(params=params)
        assert err.value.code == code, params
        assert err.value.http_status == 400
    assert client.v1.payment_intents.create(params={"amount": 50, "currency": "jpy"})
    assert client.v1.payment_intents.create(params={"amount": 1010, "currency": "kwd"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "application_fee_amount": 10})
    assert err.value.param == "application_fee_amount"


def test_not_found(client, vendor):
    for call in (lambda: client.v1.payment_intents.retrieve("pi_missing"),
                 lambda: client.v1.charges.retrieve("ch_missing"),
                 lambda: client.v1.refunds.retrieve("re_missing"),
                 lambda: client.v1.transfers.retrieve("tr_missing"),
                 lambda: client.v1.payouts.retrieve("po_missing"),
                 lambda: client.v1.disputes.retrieve("dp_missing"),
                 lambda: client.v1.events.retrieve("evt_missing"),
                 lambda: client.v1.accounts.retrieve("acct_missing"),
                 lambda: client.v1.application_fees.retrieve("fee_missing"),
                 lambda: client.v1.balance_transactions.retrieve("txn_missing")):
        with pytest.raises(stripe.InvalidRequestError) as err:
            call()
        assert err.value.http_status == 404 and err.value.code == "resource_missing"
    # objects are scoped to their account
    pi = pay(client, 1000)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.retrieve(pi.id, options=opts(vendor))


@pytest.mark.emulator_only  # a fresh platform account
def test_direct_charge_on_connected_account(client, vendor):
    pi = pay(client, 1000, account=vendor, application_fee_amount=100)
    assert pi.status == "succeeded"
    assert bts(client, vendor) == [("charge", 1000, 159, 841, "charge", "ch_")]
    assert bts(client) == [("application_fee", 100, 0, 100, "platform_earning", "fee")]
    events = client.v1.events.list(options=opts(vendor)).data
    assert {e.account for e in events} == {vendor}
    assert [e.type for e in events][:2] == ["charge.updated", "payment_intent.succeeded"]
