"""The wallet and Checkout objects against the current API, as test_reference.py checks the
others: every field Stripe shows by default is shown, none the class lacks, and the fields
never shown are the ones listed here with why."""
import pytest
import requests

from stripe_emulator import reference
from stripe_emulator.shapes import INCLUDABLE, _examples

from .helpers import pay
from .shapes import ShapeChecker

pytestmark = pytest.mark.emulator_only
CARD_ONLY = {"enabled": True, "allow_redirects": "never"}

# Fields of the package's classes these objects never show, and why.
NEVER_SHOWN = {
    # Billing (cash balance, invoice credit, sources, subscriptions, tax), Accounts v2, names
    # of businesses and individuals, deletion (a deleted customer is `{id, object, deleted}`)
    "customer": {"business_name", "cash_balance", "customer_account", "deleted",
                 "individual_name", "invoice_credit_balance", "sources", "subscriptions",
                 "tax", "tax_ids"},
    # payment method types (no longer set at this version), setting up for the platform's
    # own account, managed payments
    "setup_intent": {"allowed_payment_method_types", "attach_to_self", "managed_payments"},
    # ui modes and products other than a hosted card payment
    "checkout.session": {"branding_settings",
                         "excluded_payment_method_types", "name_collection",
                         "optional_items", "presentment_details", "redirect_on_completion",
                         "return_url", "tax_id_collection"},
    # discounts and taxes
    "item": {"discounts", "taxes"},
    # multi-currency prices, tiers, deletion
    "price": {"currency_options", "deleted", "tiers"},
}


def _scenario(client, vendor):
    """Each new object in the states it can be in."""
    customer = client.v1.customers.create(params={"email": "s@example.com", "name": "S",
                                                  "metadata": {"k": "v"}})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": pm.id}})
    client.v1.customers.list(params={"expand": ["data.invoice_settings.default_payment_method"]})
    client.v1.customers.payment_methods.list(customer.id)
    client.v1.payment_methods.detach(pm.id)
    for card in ("pm_card_visa", "pm_card_authenticationRequired", "pm_card_chargeDeclined"):
        try:
            client.v1.setup_intents.create(params={
                "customer": customer.id, "payment_method": card, "confirm": True,
                "automatic_payment_methods": CARD_ONLY, "expand": ["payment_method"]})
        except Exception:  # noqa: BLE001 - the decline's body was checked by the client
            pass
    client.v1.setup_intents.list(params={"customer": customer.id})
    pay(client, 1000, customer=customer.id, setup_future_usage="off_session",
        expand=["payment_method"])
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "customer": customer.id, "success_url": "https://x.example/ok",
        "line_items": [{"quantity": 2, "price_data": {
            "currency": "usd", "unit_amount": 700, "product_data": {"name": "Tea"}}}],
        "payment_intent_data": {"transfer_data": {"destination": vendor},
                                "application_fee_amount": 100}})
    client.v1.checkout.sessions.line_items.list(session.id)
    requests.get(session.url, allow_redirects=False, timeout=30)
    client.v1.checkout.sessions.retrieve(session.id, params={
        "expand": ["line_items", "payment_intent"]})
    other = client.v1.checkout.sessions.create(params={
        "mode": "payment", "customer_email": "g@example.com", "allowed_payment_method_types": ["card"],
        "line_items": [{"quantity": 1, "price_data": {
            "currency": "usd", "unit_amount": 900, "product_data": {"name": "Mug"}}}]})
    client.v1.checkout.sessions.expire(other.id)
    client.v1.checkout.sessions.list()
    client.v1.events.list(params={"limit": 100})


def test_the_new_objects_show_the_current_fields(target, vendor):
    from . import conftest

    checker = ShapeChecker()
    conftest.SHAPES, saved = checker, conftest.SHAPES
    try:
        _scenario(target.client(), vendor)
    finally:
        conftest.SHAPES = saved
    problems = []
    for name, never_shown in NEVER_SHOWN.items():
        assert checker.counts[name], name
        defaults = set(_examples().get(name, {})) - INCLUDABLE.get(name, frozenset())
        missing = (defaults & set(reference.fields(name))) - checker.seen[name]
        if missing:
            problems.append("%s lacks default fields %s" % (name, sorted(missing)))
        if checker.never_seen(name) != never_shown:
            problems.append("%s never shows %s (listed: %s)" % (
                name, sorted(checker.never_seen(name)), sorted(never_shown)))
    assert not problems, "\n".join(problems)
