"""The Billing objects (products, prices, subscriptions and their items, invoices, their
lines and payments) against the current API, as test_reference.py checks the others: every
field Stripe shows by default is shown, none the package's class lacks, and the fields
never shown are the ones listed here with why."""
import pytest

from stripe_emulator import reference
from stripe_emulator.shapes import INCLUDABLE, _examples

from .helpers import opts
from .shapes import ShapeChecker

pytestmark = pytest.mark.emulator_only
DAY = 86400

# Fields of the package's classes these objects never show, and why.
NEVER_SHOWN = {
    # deletion (products are not deleted here), tax details (Stripe Tax is not modelled)
    "product": {"deleted", "tax_details"},
    # multi-currency prices, tiers, deletion
    "price": {"currency_options", "deleted", "tiers"},
    # the Plan a subscription item still shows for its Price: tiers, deletion
    "plan": {"deleted", "tiers"},
    # presentment currencies, pausing
    "subscription": {"presentment_details", "status_details"},
    # flexible billing's per-item billing dates, trials, deletion
    "subscription_item": {"billed_until", "current_trial", "deleted"},
    # payments outside Stripe, deletion of drafts, uncollectible details, billing thresholds
    "invoice": {"amount_paid_off_stripe", "deleted", "status_details", "threshold_reason"},
    "invoice_payment": set(),
    "line_item": set(),
}


def _scenario(client, control, vendor):
    """Each new object in the states it can be in."""
    product = client.v1.products.create(params={
        "name": "Gold", "description": "The gold plan", "metadata": {"k": "v"},
        "default_price_data": {"currency": "usd", "unit_amount": 2000,
                               "recurring": {"interval": "month"}}})
    client.v1.products.update(product.id, params={"unit_label": "seat", "shippable": False})
    client.v1.products.list(params={"expand": ["data.default_price"]})
    price = client.v1.prices.retrieve(product.default_price, params={"expand": ["product"]})
    client.v1.prices.create(params={"product": product.id, "currency": "usd",
                                    "unit_amount": 900, "lookup_key": "setup",
                                    "nickname": "Setup"})
    other = client.v1.prices.create(params={"product": product.id, "currency": "usd",
                                            "unit_amount": 3000,
                                            "recurring": {"interval": "month",
                                                          "interval_count": 3}})
    client.v1.prices.update(other.id, params={"active": False, "metadata": {"old": "1"}})
    client.v1.prices.list(params={"product": product.id})

    def customer(card):
        return client.v1.customers.create(params={
            "email": "m@example.com", "payment_method": card,
            "invoice_settings": {"default_payment_method": card}})

    def subscribe(card, **params):
        return client.v1.subscriptions.create(params=dict(
            customer=customer(card).id, items=[{"price": price.id, "quantity": 2}],
            transfer_data={"destination": vendor}, application_fee_percent=10,
            expand=["latest_invoice.payments", "latest_invoice.confirmation_secret"],
            **params))

    paid = subscribe("pm_card_visa", metadata={"order": "1"}, description="Gold x2")
    subscribe("pm_card_authenticationRequired")
    subscribe("pm_card_chargeCustomerFail")
    subscribe("pm_card_visa", payment_behavior="default_incomplete")
    ending = subscribe("pm_card_visa", cancel_at_period_end=True)
    client.v1.subscriptions.update(paid.id, params={"metadata": {"order": "2"}})
    client.v1.subscription_items.list(params={"subscription": paid.id})
    client.v1.subscription_items.retrieve(paid.items.data[0].id)
    end = paid.items.data[0].current_period_end
    now = control.get("clock")["now"]
    control.advance(end - now)  # the renewals are drafts; the incomplete ones expired
    client.v1.invoices.list(params={"status": "draft", "expand": ["data.payments"]})
    control.advance(3600)  # finalized and paid; the canceled-at-period-end one ended
    client.v1.subscriptions.cancel(paid.id)
    for sub in client.v1.subscriptions.list(params={
            "status": "all", "expand": ["data.latest_invoice"]}).auto_paging_iter():
        del sub
    client.v1.subscriptions.retrieve(ending.id)
    for invoice in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter():
        client.v1.invoices.retrieve(invoice.id, params={
            "expand": ["payments", "confirmation_secret"]})
        client.v1.invoices.line_items.list(invoice.id)
    for payment in client.v1.invoice_payments.list(params={"limit": 100}).auto_paging_iter():
        client.v1.invoice_payments.retrieve(payment.id)
    client.v1.events.list(params={"limit": 100})
    client.v1.subscriptions.list(options=opts(vendor))


def test_the_billing_objects_show_the_current_fields(target, control, vendor):
    from . import conftest

    checker = ShapeChecker()
    conftest.SHAPES, saved = checker, conftest.SHAPES
    try:
        _scenario(target.client(), control, vendor)
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


def test_the_subscription_events_are_current_event_types():
    types = reference.event_types()
    for name in ("customer.subscription.created", "customer.subscription.updated",
                 "customer.subscription.deleted", "invoice.created", "invoice.finalized",
                 "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
                 "invoice.payment_action_required", "invoice.voided", "invoice.updated",
                 "invoice_payment.paid", "product.created", "product.updated",
                 "price.created", "price.updated"):
        assert name in types, name
