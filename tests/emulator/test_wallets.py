"""Shoppers' wallets: Customers, saved PaymentMethods, SetupIntents, and payments with a
saved card (setup_future_usage, off-session)."""
import pytest
import requests
import stripe

from .helpers import event_types, opts, pay

CARD_ONLY = {"enabled": True, "allow_redirects": "never"}


def _customer(client, **params):
    return client.v1.customers.create(params=dict(email="shopper@example.com", **params))


def _saved(client, customer, pm="pm_card_visa"):
    return client.v1.payment_methods.attach(pm, params={"customer": customer.id})


def _setup(client, customer, pm, **params):
    return client.v1.setup_intents.create(params=dict(
        customer=customer.id, payment_method=pm, confirm=True,
        automatic_payment_methods=CARD_ONLY, **params))


# customers --------------------------------------------------------------------------------

def test_customer_create_retrieve_update_list(client):
    customer = client.v1.customers.create(params={
        "email": "ann@example.com", "name": "Ann", "metadata": {"user_id": "u1"},
        "description": "first shopper"})
    assert customer.id.startswith("cus_") and customer.email == "ann@example.com"
    assert customer.invoice_settings.default_payment_method is None
    assert customer.metadata["user_id"] == "u1" and customer.balance == 0
    assert client.v1.customers.retrieve(customer.id).name == "Ann"
    updated = client.v1.customers.update(customer.id, params={
        "email": "ann@shop.example", "metadata": {"tier": "gold"}})
    assert updated.email == "ann@shop.example" and updated.metadata["user_id"] == "u1"
    other = client.v1.customers.create(params={"email": "bob@example.com"})
    found = client.v1.customers.list(params={"email": "ann@shop.example"}).data
    assert [c.id for c in found] == [customer.id]
    listed = [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()]
    assert customer.id in listed and other.id in listed


@pytest.mark.emulator_only  # a fresh platform account
def test_customer_events_idempotency_and_deletion(client, emu):
    first = client.v1.customers.create(params={"email": "c@example.com"},
                                       options=opts(key="customer-u1"))
    again = client.v1.customers.create(params={"email": "c@example.com"},
                                       options=opts(key="customer-u1"))
    assert again.id == first.id
    assert len(client.v1.customers.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "d@example.com"},
                                   options=opts(key="customer-u1"))
    client.v1.customers.update(first.id, params={"name": "Cy"})
    deleted = client.v1.customers.delete(first.id)
    assert deleted.deleted is True
    assert client.v1.customers.retrieve(first.id).deleted is True
    assert client.v1.customers.list().data == []
    assert event_types(client) == ["customer.created", "customer.updated", "customer.deleted"]
    updated = client.v1.events.list(params={"type": "customer.updated"}).data[0]
    assert updated.data.previous_attributes["name"] is None


def test_customer_errors(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"email": "not-an-email"})
    assert err.value.code == "email_invalid" and err.value.param == "email"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_missing")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd",
                                                 "customer": "cus_missing"})
    assert err.value.code == "resource_missing" and err.value.param == "customer"


# payment methods --------------------------------------------------------------------------

def test_a_test_card_attached_becomes_a_payment_method_of_its_own(client):
    customer = _customer(client)
    pm = _saved(client, customer)
    assert pm.id.startswith("pm_") and pm.id != "pm_card_visa"
    assert pm.customer == customer.id and pm.type == "card"
    assert (pm.card.brand, pm.card.last4, pm.card.exp_month) == ("visa", "4242", 12)
    assert client.v1.payment_methods.retrieve(pm.id).customer == customer.id
    second = _saved(client, customer, "pm_card_mastercard")
    listed = client.v1.customers.payment_methods.list(customer.id).data
    assert [p.id for p in listed] == [second.id, pm.id]
    by_query = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [p.id for p in by_query.data] == [second.id, pm.id]
    assert client.v1.payment_methods.list().data == []  # no customer: Treasury's only
    assert client.v1.customers.payment_methods.retrieve(customer.id, pm.id).id == pm.id
    again = client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    assert again.customer == customer.id  # the same customer: nothing changes


def test_default_payment_method_and_detach(client):
    customer = _customer(client)
    pm = _saved(client, customer)
    updated = client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": pm.id}})
    assert updated.invoice_settings.default_payment_method == pm.id
    other = _customer(client)
    foreign = _saved(client, other)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(customer.id, params={
            "invoice_settings": {"default_payment_method": foreign.id}})
    assert err.value.param == "invoice_settings[default_payment_method]"
    assert "must be attached to the customer" in err.value.user_message
    detached = client.v1.payment_methods.detach(pm.id)
    assert detached.customer is None
    assert client.v1.customers.retrieve(customer.id).invoice_settings \
        .default_payment_method is None
    assert client.v1.customers.payment_methods.list(customer.id).data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.detach(pm.id)
    assert "not attached to a customer" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as err:  # detached: never used again
        client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    assert "may not be used again" in err.value.user_message


def test_a_customer_made_with_a_default_test_card(client):
    customer = client.v1.customers.create(params={
        "email": "e@example.com", "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    default = customer.invoice_settings.default_payment_method
    assert default.startswith("pm_") and default != "pm_card_visa"
    assert client.v1.payment_methods.retrieve(default).customer == customer.id


def test_a_payment_method_is_attached_to_one_customer(client):
    first, second = _customer(client), _customer(client)
    pm = _saved(client, first)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.attach(pm.id, params={"customer": second.id})
    assert err.value.user_message == ("The payment method you provided has already been "
                                      "attached to a customer.")
    assert client.v1.payment_methods.retrieve(pm.id).customer == first.id


def test_attach_errors(client):
    customer = _customer(client)
    with pytest.raises(stripe.CardError) as err:  # a declining card is not saved
        _saved(client, customer, "pm_card_chargeDeclined")
    assert err.value.code == "card_declined" and err.value.http_status == 402
    assert _saved(client, customer, "pm_card_chargeCustomerFail").customer == customer.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.attach("pm_card_visa", params={"customer": "cus_missing"})
    assert err.value.code == "resource_missing" and err.value.param == "customer"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.retrieve("pm_missing")
    assert err.value.http_status == 404


@pytest.mark.emulator_only  # the events of a fresh platform account
def test_payment_method_events(client, emu, receiver):
    customer = _customer(client)
    pm = _saved(client, customer)
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": pm.id}})
    client.v1.payment_methods.detach(pm.id)
    assert event_types(client) == ["customer.created", "payment_method.attached",
                                   "customer.updated", "payment_method.detached",
                                   "customer.updated"]
    detached = client.v1.events.list(params={"type": "payment_method.detached"}).data[0]
    assert detached.data.previous_attributes["customer"] == customer.id
    assert emu.wait_idle(5)
    assert receiver.types()[-2:] == ["payment_method.detached", "customer.updated"]


# payments with a customer -----------------------------------------------------------------

def test_a_saved_card_pays_for_its_customer(client):
    customer = _customer(client)
    pm = _saved(client, customer)
    pi = pay(client, 1500, pm=pm.id, customer=customer.id, receipt_email="r@example.com",
             expand=["latest_charge"])
    assert pi.status == "succeeded" and pi.payment_method == pm.id
    charge = pi.latest_charge
    assert charge.customer == customer.id and charge.payment_method == pm.id
    assert charge.receipt_email == "r@example.com" and charge.receipt_url
    card = charge.payment_method_details.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, 2034)
    assert pay(client, 700, pm=pm.id, customer=customer.id).status == "succeeded"  # again


def test_a_payment_method_of_another_customer_is_refused(client):
    owner, other = _customer(client), _customer(client)
    pm = _saved(client, owner)
    with pytest.raises(stripe.InvalidRequestError) as err:
        pay(client, 1000, pm=pm.id, customer=other.id)
    assert err.value.param == "payment_method" and err.value.code is None
    assert err.value.user_message == (
        "The PaymentMethod %s does not belong to the Customer you supplied %s. Please use "
        "this PaymentMethod with the Customer that it belongs to instead." % (pm.id, other.id))
    with pytest.raises(stripe.InvalidRequestError) as err:
        pay(client, 1000, pm=pm.id)
    assert err.value.code == "parameter_missing"


def test_a_payment_method_used_without_a_customer_is_used_once(client):
    pi = pay(client, 1000, settle=False)
    with pytest.raises(stripe.InvalidRequestError) as err:
        pay(client, 1000, pm=pi.payment_method, settle=False)
    assert "It may not be used again" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError):
        _saved(client, _customer(client), pi.payment_method)


@pytest.mark.emulator_only  # the events of a fresh platform account
def test_setup_future_usage_saves_the_card(client):
    customer = _customer(client)
    pi = pay(client, 2000, customer=customer.id, setup_future_usage="off_session",
             expand=["payment_method"])
    assert pi.status == "succeeded" and pi.payment_method.customer == customer.id
    saved = client.v1.customers.payment_methods.list(customer.id).data
    assert [p.id for p in saved] == [pi.payment_method.id]
    types = event_types(client)
    assert types.index("payment_method.attached") < types.index("payment_intent.succeeded")
    later = pay(client, 900, pm=pi.payment_method.id, customer=customer.id, off_session=True)
    assert later.status == "succeeded"


def test_off_session_with_a_saved_card_that_needs_authentication_fails(client):
    customer = _customer(client)
    pm = _saved(client, customer, "pm_card_authenticationRequired")
    with pytest.raises(stripe.CardError) as err:
        pay(client, 1000, pm=pm.id, customer=customer.id, off_session=True, settle=False)
    assert err.value.code == "authentication_required"
    assert err.value.error.decline_code == "authentication_required"
    pi = client.v1.payment_intents.retrieve(err.value.error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.payment_method.id == pm.id
    assert client.v1.payment_methods.retrieve(pm.id).customer == customer.id  # still saved


# setup intents ----------------------------------------------------------------------------

@pytest.mark.emulator_only  # the events of a fresh platform account
def test_setup_intent_saves_a_card(client):
    customer = _customer(client)
    si = client.v1.setup_intents.create(params={
        "customer": customer.id, "usage": "off_session", "metadata": {"user_id": "u1"},
        "automatic_payment_methods": CARD_ONLY})
    assert si.status == "requires_payment_method" and si.usage == "off_session"
    assert si.client_secret.startswith(si.id + "_secret_") and si.payment_method is None
    si = client.v1.setup_intents.confirm(si.id, params={"payment_method": "pm_card_visa"})
    assert si.status == "succeeded" and si.payment_method.startswith("pm_")
    assert si.payment_method != "pm_card_visa"
    assert client.v1.payment_methods.retrieve(si.payment_method).customer == customer.id
    assert client.v1.setup_intents.retrieve(si.id).status == "succeeded"
    assert event_types(client) == ["customer.created", "setup_intent.created",
                                   "payment_method.attached", "setup_intent.succeeded"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.confirm(si.id)
    assert err.value.code == "setup_intent_unexpected_state"
    assert [s.id for s in client.v1.setup_intents.list(
        params={"customer": customer.id}).data] == [si.id]


@pytest.mark.emulator_only  # the authenticate control
def test_setup_intent_three_d_secure(client, control):
    customer = _customer(client)
    si = _setup(client, customer, "pm_card_authenticationRequiredOnSetup")
    assert si.status == "requires_action" and si.next_action.type == "use_stripe_sdk"
    control.post("setup_intents/%s/authenticate" % si.id, outcome="succeed")
    si = client.v1.setup_intents.retrieve(si.id)
    assert si.status == "succeeded"
    # set up: the card pays off-session without authentication
    pi = pay(client, 1000, pm=si.payment_method, customer=customer.id, off_session=True)
    assert pi.status == "succeeded"
    # the redirect, then a failed authentication
    si = _setup(client, customer, "pm_card_authenticationRequired",
                return_url="https://shop.example/saved")
    resp = requests.get(si.next_action.redirect_to_url.url + "?outcome=fail",
                        allow_redirects=False)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://shop.example/saved?setup_intent=" + si.id
    si = client.v1.setup_intents.retrieve(si.id)
    assert si.status == "requires_payment_method" and si.payment_method is None
    assert si.last_setup_error.code == "setup_intent_authentication_failure"
    assert "setup_intent.setup_failed" in event_types(client)


@pytest.mark.emulator_only  # the events of a fresh platform account
def test_setup_intent_decline(client):
    customer = _customer(client)
    with pytest.raises(stripe.CardError) as err:
        _setup(client, customer, "pm_card_chargeDeclinedInsufficientFunds")
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert err.value.error.decline_code == "insufficient_funds"
    si = client.v1.setup_intents.retrieve(err.value.error.setup_intent.id)
    assert si.status == "requires_payment_method" and si.payment_method is None
    assert si.last_setup_error.decline_code == "insufficient_funds"
    assert client.v1.customers.payment_methods.list(customer.id).data == []
    assert event_types(client)[-2:] == ["setup_intent.created", "setup_intent.setup_failed"]
    si = client.v1.setup_intents.confirm(si.id, params={"payment_method": "pm_card_visa"})
    assert si.status == "succeeded"


def test_setup_intent_rules(client):
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as err:  # redirects on, no return_url
        client.v1.setup_intents.create(params={"customer": customer.id,
                                               "payment_method": "pm_card_visa",
                                               "confirm": True})
    assert err.value.param == "return_url"
    other = _saved(client, _customer(client))
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.create(params={"customer": customer.id,
                                               "payment_method": other.id})
    assert "does not belong to the Customer" in err.value.user_message
    si = client.v1.setup_intents.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.confirm(si.id)
    assert err.value.code == "setup_intent_unexpected_state"
    canceled = client.v1.setup_intents.cancel(si.id, params={
        "cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"
