"""The current API (2026-10-28.endive), item by item: what the emulator once answered as the
2020 API did and Stripe today answers otherwise. Each test runs against the emulator and,
unless marked, against Stripe's test mode too."""
import time

import pytest
import stripe
from stripe._api_version import _ApiVersion

from .conftest import raw
from .helpers import opts, pay

CURRENT = _ApiVersion.CURRENT


def _card_only(**params):
    return dict(params, automatic_payment_methods={"enabled": True, "allow_redirects": "never"})


def _id(event):
    return event.data.object.to_dict().get("id")


def _charge_id(pi):
    return pi.latest_charge if isinstance(pi.latest_charge, str) else pi.latest_charge.id


# 1. the version the package sends is the version served -----------------------------------

def test_the_current_version_is_served_and_named_in_events(client, target):
    started = int(time.time()) - 5
    answer = raw(target, "GET", "/v1/balance", headers={"Stripe-Version": CURRENT})
    assert answer.status_code == 200 and answer.headers["Stripe-Version"] == CURRENT
    pi = pay(client, 1000, settle=False)
    events = [e for e in target.events(client, started) if _id(e) == pi.id]
    assert events and {e.api_version for e in events} == {CURRENT}


@pytest.mark.parametrize("version", ["2099-01-01", "yesterday", "2026-13-45x"])
def test_a_malformed_or_unknown_version_is_refused(target, version):
    answer = raw(target, "GET", "/v1/balance", headers={"Stripe-Version": version})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "Invalid Stripe API version: %s" % version


@pytest.mark.emulator_only
def test_an_older_real_version_is_refused_by_the_emulator_only(target):
    # Stripe would serve 2020-08-27; the emulator serves the current version alone.
    answer = raw(target, "GET", "/v1/balance", headers={"Stripe-Version": "2020-08-27"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "api_version_unsupported"


def test_payment_intents_have_no_charges_and_charges_no_refunds(client):
    pi = pay(client, 1200)
    assert "charges" not in pi and _charge_id(pi).startswith("ch_")
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 200})
    charge = client.v1.charges.retrieve(_charge_id(pi))
    assert "refunds" not in charge and charge.amount_refunded == 200
    listed = client.v1.charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert [r.amount for r in listed.refunds.data] == [200]


def test_payment_method_types_is_no_longer_a_parameter(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd",
                                                 "payment_method_types": ["card"]})
    assert err.value.http_status == 400
    assert err.value.code == "payment_method_types_no_longer_supported"


def test_confirming_with_automatic_payment_methods_needs_a_return_url(client):
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert pi.automatic_payment_methods.enabled and pi.payment_method_types
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert err.value.param == "return_url"
    done = client.v1.payment_intents.confirm(pi.id, params={
        "payment_method": "pm_card_visa", "return_url": "https://shop.example/back"})
    assert done.status == "succeeded" and done.capture_method == "automatic_async"


# 2. asynchronous capture -------------------------------------------------------------------

def test_capture_is_asynchronous_and_charge_updated_announces_the_money(client, target, vendor):
    started = int(time.time()) - 5
    pi = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=123,
             settle=False, expand=["latest_charge.balance_transaction"])
    assert pi.status == "succeeded" and pi.capture_method == "automatic_async"
    charge = pi.latest_charge
    assert charge.captured and charge.amount_captured == 1000
    if charge.balance_transaction is None:  # Stripe may be quick; the emulator never is
        assert charge.transfer is None and charge.application_fee is None
    settled = target.settle(client, charge.id)
    assert settled.balance_transaction.startswith("txn_")
    assert settled.transfer.startswith("tr_") and settled.application_fee.startswith("fee_")
    bt = client.v1.balance_transactions.retrieve(settled.balance_transaction)
    assert (bt.amount, bt.fee, bt.net, bt.source) == (1000, 59, 941, charge.id)
    events = [e for e in target.events(client, started) if _id(e) in (pi.id, charge.id)]
    types = [e.type for e in events]
    assert "charge.succeeded" in types and "payment_intent.succeeded" in types
    for event in events:
        obj = event.data.object.to_dict()
        if event.type == "charge.succeeded" and not target.real:
            assert (obj["balance_transaction"], obj["transfer"], obj["application_fee"]) == (
                None, None, None)
        if event.type == "payment_intent.succeeded":
            assert obj["latest_charge"] == charge.id
    updated = [e for e in events if e.type == "charge.updated"
               and "balance_transaction" in (e.data.to_dict().get("previous_attributes") or {})]
    assert updated and updated[-1].data.object.balance_transaction == settled.balance_transaction


def test_capture_method_automatic_settles_at_once(client):
    pi = pay(client, 1000, capture_method="automatic", settle=False,
             expand=["latest_charge.balance_transaction"])
    assert pi.capture_method == "automatic"
    assert pi.latest_charge.balance_transaction.amount == 1000


@pytest.mark.emulator_only
def test_the_sync_capture_control_settles_every_capture_at_once(client, control):
    control.post("capture", mode="sync")
    pi = pay(client, 1000, settle=False, expand=["latest_charge"])
    assert pi.latest_charge.balance_transaction.startswith("txn_")
    control.post("capture", mode="async", delay_seconds=0.05)
    pi = pay(client, 1000, settle=False, expand=["latest_charge"])
    assert pi.latest_charge.balance_transaction is None
    time.sleep(0.5)  # the realistic short delay, without asking
    assert client.v1.charges.retrieve(pi.latest_charge.id).balance_transaction


def test_separate_charges_transfer_before_the_charge_settled(client, target, vendor):
    pi = pay(client, 2000, transfer_group="order_async", settle=False)
    transfer = client.v1.transfers.create(params={
        "amount": 1500, "currency": "usd", "destination": vendor, "transfer_group": "order_async",
        "source_transaction": _charge_id(pi)})
    assert transfer.source_transaction == _charge_id(pi) and transfer.amount == 1500
    settled = target.settle(client, _charge_id(pi))
    charge_bt = client.v1.balance_transactions.retrieve(settled.balance_transaction)
    vendor_bt = client.v1.balance_transactions.list(options=opts(vendor)).data[0]
    assert vendor_bt.amount == 1500 and vendor_bt.available_on == charge_bt.available_on


# 3. 3-D Secure is the customer's -----------------------------------------------------------

def test_confirming_again_is_a_new_attempt_needing_authentication(client):
    pi = pay(client, 1000, pm="pm_card_authenticationRequired", settle=False)
    assert pi.status == "requires_action" and pi.next_action is not None
    again = client.v1.payment_intents.confirm(pi.id, params={
        "payment_method": "pm_card_authenticationRequired"})
    assert again.status == "requires_action" and again.latest_charge is None


@pytest.mark.emulator_only
def test_only_the_customer_completes_authentication(client, control):
    pi = pay(client, 1000, pm="pm_card_authenticationRequiredChargeDeclinedInsufficientFunds",
             settle=False)
    assert pi.status == "requires_action"
    control.post("payment_intents/%s/authenticate" % pi.id)
    after = client.v1.payment_intents.retrieve(pi.id)  # authenticated, then declined
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.decline_code == "insufficient_funds"


# 4. off-session payments that need authentication fail -------------------------------------

def test_off_session_authentication_required_fails_the_attempt(client):
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm="pm_card_authenticationRequired", off_session=True, settle=False)
    assert err.value.http_status == 402 and err.value.code == "authentication_required"
    error = err.value.error
    assert error.decline_code == "authentication_required"
    pi = client.v1.payment_intents.retrieve(error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "authentication_required"
    retried = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert retried.status == "succeeded"  # the payment stays payable


@pytest.mark.emulator_only  # on Stripe, error_on_requires_action needs explicit payment method types
def test_error_on_requires_action_fails_the_attempt(client):
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm="pm_card_authenticationRequired", error_on_requires_action=True,
            settle=False)
    assert err.value.code == "authentication_required"
    assert client.v1.payment_intents.retrieve(
        err.value.error.payment_intent.id).status == "requires_payment_method"


def test_a_card_set_up_for_off_session_use_pays_off_session(client):
    pi = pay(client, 1000, pm="pm_card_authenticationRequiredSetupForOffSession",
             off_session=True, settle=False)
    assert pi.status == "succeeded"


# 5. expand[] is checked ----------------------------------------------------------------------

@pytest.mark.parametrize("path, message", [
    ("amount", "This property cannot be expanded (amount)."),
    ("foo", "This property cannot be expanded (foo)."),
    ("latest_charge.balance_transaction.source.charge.customer",
     "You cannot expand more than 4 levels of a property. Property: "
     "latest_charge.balance_transaction.source.charge.customer"),
])
def test_expand_only_expandable_fields_four_levels_deep(client, path, message):
    pi = client.v1.payment_intents.create(params=_card_only(amount=1000, currency="usd"))
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.retrieve(pi.id, params={"expand": [path]})
    assert err.value.http_status == 400 and err.value.user_message.startswith(message)


def test_lists_expand_through_data(client):
    pay(client, 1000)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.list(params={"expand": ["latest_charge"], "limit": 1})
    assert "data.latest_charge" in err.value.user_message
    page = client.v1.payment_intents.list(params={
        "expand": ["data.latest_charge.balance_transaction"], "limit": 1})
    assert page.data[0].latest_charge.balance_transaction.object == "balance_transaction"
    nested = client.v1.payment_intents.list(params={
        "expand": ["data.latest_charge.balance_transaction.source"], "limit": 1})
    assert nested.data[0].latest_charge.balance_transaction.source.object == "charge"


# 6. unknown parameters, GETs included ----------------------------------------------------------

def test_unknown_query_parameters_are_refused(target, vendor):
    answer = raw(target, "GET", "/v1/balance", params={"stripeAccount": vendor})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_unknown", "stripeAccount")
    nested = raw(target, "POST", "/v1/payment_intents", data={
        "amount": 1000, "currency": "usd", "transfer_data[colour]": "red"})
    assert nested.json()["error"]["param"] == "transfer_data[colour]"
    several = raw(target, "GET", "/v1/charges", params={"a": "1", "b": "2"})
    assert several.json()["error"]["message"] == "Received unknown parameters: a, b"


# 7. transfer reversals refund the application fee on request --------------------------------

def test_reversal_with_refund_application_fee_returns_the_fee_pro_rata(client, target, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=100)
    charge = client.v1.charges.retrieve(_charge_id(pi), params={"expand": ["transfer"]})
    reversal = client.v1.transfers.reversals.create(charge.transfer.id, params={
        "amount": 400, "refund_application_fee": True})
    assert reversal.amount == 400
    fee = client.v1.application_fees.retrieve(charge.application_fee)
    assert fee.amount_refunded == 40 and len(fee.refunds.data) == 1
    rest = client.v1.transfers.reversals.create(charge.transfer.id, params={
        "refund_application_fee": True})
    assert rest.amount == 600
    assert client.v1.application_fees.retrieve(charge.application_fee).amount_refunded == 100
    plain = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=100)
    plain_charge = client.v1.charges.retrieve(_charge_id(plain), params={"expand": ["transfer"]})
    client.v1.transfers.reversals.create(plain_charge.transfer.id, params={"amount": 400})
    assert client.v1.application_fees.retrieve(plain_charge.application_fee).amount_refunded == 0


# 8. the application fee is capped at what is captured ---------------------------------------

def test_application_fee_capped_at_the_captured_amount(client, target, vendor):
    pi = client.v1.payment_intents.create(params=_card_only(
        amount=5000, currency="usd", capture_method="manual", payment_method="pm_card_visa",
        confirm=True, transfer_data={"destination": vendor}, application_fee_amount=3000))
    assert pi.status == "requires_capture"
    captured = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2000})
    charge = target.settle(client, _charge_id(captured))
    fee = client.v1.application_fees.retrieve(charge.application_fee)
    assert fee.amount == 2000 and charge.application_fee_amount == 2000
    assert client.v1.balance.retrieve(options=opts(vendor)).pending[0].amount == 0


# 9. account debits are booked on the connected account ----------------------------------------

@pytest.mark.emulator_only  # Stripe needs the connected account to have debits enabled by agreement
def test_an_account_debit_is_the_connected_accounts_transfer(client, control, vendor):
    pay(client, 3000, transfer_data={"destination": vendor}, pm="pm_card_bypassPending")
    control.advance(3 * 86400)
    platform = client.v1.accounts.retrieve_current().id
    debit = client.v1.transfers.create(params={"amount": 500, "currency": "usd",
                                               "destination": platform}, options=opts(vendor))
    assert debit.destination == platform
    vendor_bt = client.v1.balance_transactions.list(options=opts(vendor)).data[0]
    assert (vendor_bt.type, vendor_bt.amount, vendor_bt.source) == ("transfer", -500, debit.id)
    platform_bt = client.v1.balance_transactions.list().data[0]
    assert (platform_bt.type, platform_bt.amount) == ("payment", 500)
    assert platform_bt.source == debit.destination_payment
    assert client.v1.transfers.retrieve(debit.id, options=opts(vendor)).id == debit.id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.retrieve(debit.id)  # not the platform's transfer


# 10. refunds that wait --------------------------------------------------------------------------

def test_a_pending_refund_is_booked_when_it_succeeds(client, target):
    pi = pay(client, 1000, pm="pm_card_pendingRefund")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    assert refund.status == "pending" and refund.balance_transaction is None
    deadline = time.time() + 120
    while refund.status == "pending" and time.time() < deadline:
        target.later()
        refund = client.v1.refunds.retrieve(refund.id)
    assert refund.status == "succeeded" and refund.balance_transaction.startswith("txn_")


@pytest.mark.emulator_only  # needs a platform whose balance is small enough
def test_a_refund_the_balance_cannot_cover_waits_for_funds(client, control, vendor):
    settings = client.v1.balance_settings.update(params={"payments": {"debit_negative_balances": False}})
    assert settings.payments.debit_negative_balances is False
    pi = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=100)
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})  # vendor keeps its share
    assert (refund.status, refund.pending_reason) == ("pending", "insufficient_funds")
    assert refund.balance_transaction is None
    pay(client, 2000)  # money comes in
    refund = client.v1.refunds.retrieve(refund.id, params={"expand": ["balance_transaction"]})
    assert refund.status == "succeeded" and refund.balance_transaction.amount == -1000
    assert "pending_reason" not in refund
    assert {"refund.updated", "charge.refund.updated"} <= {
        e.type for e in client.v1.events.list(params={"limit": 100}).data}


def test_a_refund_of_a_refund_fail_card_fails_later(client, target):
    pi = pay(client, 1000, pm="pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "succeeded"
    deadline = time.time() + 120
    while refund.status == "succeeded" and time.time() < deadline:
        target.later()
        refund = client.v1.refunds.retrieve(refund.id)
    assert (refund.status, refund.failure_reason) == ("failed", "expired_or_canceled_card")
    assert refund.failure_balance_transaction


# 11. input limits --------------------------------------------------------------------------------

def test_metadata_and_description_limits(client):
    base = _card_only(amount=1000, currency="usd")
    cases = [
        ({"metadata": {"k%d" % i: "v" for i in range(51)}}, "Metadata can have up to 50 keys"),
        ({"metadata": {"k" * 41: "v"}}, "Invalid key"),
        ({"metadata": {"k": "v" * 501}}, "Invalid val"),
        ({"description": "d" * 1001}, "Invalid string"),
    ]
    for extra, message in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.payment_intents.create(params=dict(base, **extra))
        assert err.value.http_status == 400 and message in err.value.user_message, extra
    fine = client.v1.payment_intents.create(params=dict(
        base, metadata={"k%d" % i: "v" * 500 for i in range(50)}, description="d" * 1000))
    assert len(fine.metadata.to_dict()) == 50


# the rest of the list ------------------------------------------------------------------------------

@pytest.mark.emulator_only  # the test bank account of a Custom account on Stripe differs
def test_instant_payouts_need_an_eligible_card(client, control, vendor):
    pay(client, 2000, transfer_data={"destination": vendor}, pm="pm_card_bypassPending")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payouts.create(params={"amount": 500, "currency": "usd", "method": "instant"},
                                 options=opts(vendor))
    assert err.value.code == "instant_payouts_unsupported"


def test_destination_charges_to_another_region_need_on_behalf_of(client, target):
    account = target.vendor(client, country="GB")
    with pytest.raises(stripe.InvalidRequestError) as err:
        pay(client, 1000, currency="gbp", transfer_data={"destination": account}, settle=False)
    assert err.value.code == "transfers_not_allowed"
    pi = pay(client, 1000, currency="gbp", transfer_data={"destination": account},
             on_behalf_of=account, settle=False)
    assert pi.status == "succeeded"


@pytest.mark.emulator_only  # Stripe's countered fee depends on the region and the network
def test_a_won_dispute_returns_the_amount_and_the_countered_fee(client, control):
    pi = pay(client, 1000, pm="pm_card_createDispute")
    control.post("settle")
    (dispute,) = client.v1.disputes.list(params={"payment_intent": pi.id}).data
    client.v1.disputes.update(dispute.id, params={"evidence": {
        "uncategorized_text": "winning_evidence"}})
    control.post("settle")  # the issuer decides a moment later
    dispute = client.v1.disputes.retrieve(dispute.id)
    assert dispute.status == "won"
    amounts = [(bt.type, bt.amount, bt.fee) for bt in dispute.balance_transactions]
    assert amounts == [("adjustment", -1000, 1500), ("stripe_fee", -1500, 0),
                       ("adjustment", 1000, 0), ("stripe_fee", 1500, 0)]


def test_login_links_are_for_express_accounts_only(client, target):
    custom = client.v1.accounts.create(params={"type": "custom", "country": "US",
                                               "capabilities": {"transfers": {"requested": True}}})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.login_links.create(custom.id)
    assert err.value.http_status == 400
    assert custom.controller.type == "application" and custom.controller.is_controller


@pytest.mark.emulator_only  # an Express account is only onboarded by a person on Stripe
def test_an_onboarded_express_account_gets_a_login_link(client, vendor):
    account = client.v1.accounts.retrieve(vendor)
    assert account.controller.stripe_dashboard.type == "express"
    link = client.v1.accounts.login_links.create(vendor)
    assert link.object == "login_link" and link.url.startswith("http")


@pytest.mark.emulator_only
def test_onboarding_and_settled_funds_are_announced(client, control, vendor):
    types = [e.type for e in client.v1.events.list(options=opts(vendor)).data]
    assert types.count("capability.updated") == 2 and "account.updated" in types
    capability = next(e for e in client.v1.events.list(options=opts(vendor)).data
                      if e.type == "capability.updated").data.object
    assert capability.object == "capability" and capability.status == "active"
    pay(client, 1000, transfer_data={"destination": vendor})
    control.advance(3 * 86400)
    available = [e for e in client.v1.events.list(params={"type": "balance.available"},
                                                  options=opts(vendor)).data]
    assert available and available[0].data.object.available[0].amount == 1000


def test_payment_intents_are_searchable(client, target):
    tag = "search-%d" % time.time_ns()
    pi = pay(client, 1234, metadata={"order_id": tag})
    query = "metadata['order_id']:'%s' AND status:'succeeded'" % tag
    deadline = time.time() + 90  # Stripe's search lags up to a minute
    found = client.v1.payment_intents.search(params={"query": query})
    while not found.data and target.real and time.time() < deadline:
        time.sleep(5)
        found = client.v1.payment_intents.search(params={"query": query})
    assert [p.id for p in found.data] == [pi.id] and found.object == "search_result"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.search(params={"query": "colour:'red'"})


@pytest.mark.parametrize("pm, code, decline", [
    ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", None),
    ("pm_card_radarBlock", "card_declined", "fraudulent"),
])
def test_more_test_cards(client, pm, code, decline):
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm=pm, settle=False)
    assert err.value.code == code
    assert getattr(err.value.error, "decline_code", None) == decline


@pytest.mark.emulator_only  # the platform's settlement currencies are set in Stripe's Dashboard
def test_a_charge_in_a_currency_the_platform_does_not_settle_in_is_converted(client, control, vendor):
    assert control.post("platform")["settlement_currencies"] == ["usd"]  # a US platform
    pi = pay(client, 1000, currency="eur", transfer_group="order_fx",
             expand=["latest_charge.balance_transaction"])
    bt = pi.latest_charge.balance_transaction
    assert (pi.latest_charge.amount, pi.latest_charge.currency) == (1000, "eur")
    assert (bt.amount, bt.currency, bt.exchange_rate) == (1080, "usd", 1.08)
    assert bt.fee == 61 and bt.net == 1019  # 2.9% + 30 of the converted amount
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params={"amount": 500, "currency": "eur", "destination": vendor,
                                           "source_transaction": pi.latest_charge.id})
    assert err.value.user_message == ("The currency of source_transaction's balance transaction "
                                      "(usd) must be the same as the transfer currency (eur)")
    transfer = client.v1.transfers.create(params={"amount": 500, "currency": "usd",
                                                  "destination": vendor,
                                                  "source_transaction": pi.latest_charge.id})
    assert transfer.currency == "usd"
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500,
                                              "expand": ["balance_transaction"]})
    assert (refund.amount, refund.currency) == (500, "eur")
    assert (refund.balance_transaction.amount, refund.balance_transaction.currency) == (-540, "usd")
    control.post("platform", settlement_currencies=["usd", "eur"])  # multi-currency settlement
    settled = pay(client, 1000, currency="eur", expand=["latest_charge.balance_transaction"])
    assert (settled.latest_charge.balance_transaction.currency,
            settled.latest_charge.balance_transaction.exchange_rate) == ("eur", None)
