"""Products, Prices and vendor subscriptions billed on the platform as destination charges:
invoices paid through PaymentIntents, renewals by the clock, declines and retries, 3-D
Secure, cancellation, price changes, refunds, events in order, to the cent."""
import pytest
import requests
import stripe

from .helpers import balance, bts, check_balance_matches, event_types, opts

pytestmark = pytest.mark.emulator_only  # the emulator's clock drives the billing periods
DAY = 86400
HOUR = 3600


def _price(client, amount=2000, interval="month", **recurring):
    product = client.v1.products.create(params={"name": "Gold plan"})
    return client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": amount,
        "recurring": dict(interval=interval, **recurring)})


def _customer(client, card="pm_card_visa"):
    """A customer whose default PaymentMethod is (a PaymentMethod of) `card`."""
    return client.v1.customers.create(params={
        "email": "member@example.com", "name": "Member", "payment_method": card,
        "invoice_settings": {"default_payment_method": card}})


def _subscribe(client, vendor, price, customer, fee=10, **params):
    params.setdefault("expand", ["latest_invoice.payments"])
    return client.v1.subscriptions.create(params=dict(
        customer=customer.id, items=[{"price": price.id}],
        transfer_data={"destination": vendor}, application_fee_percent=fee, **params))


def _now(control):
    return control.get("clock")["now"]


def _to(control, ts):
    """Advance the emulator's clock to `ts` (unix seconds)."""
    now = _now(control)
    if ts > now:
        control.advance(ts - now)


def _period_end(client, sub_id):
    return client.v1.subscriptions.retrieve(sub_id).items.data[0].current_period_end


def _invoices(client, sub_id):
    """The subscription's invoices, oldest first."""
    page = client.v1.invoices.list(params={"subscription": sub_id, "limit": 100})
    return list(reversed(page.data))


def _intent(client, invoice_id):
    """The PaymentIntent paying an invoice, found through its InvoicePayment."""
    (payment,) = client.v1.invoice_payments.list(params={"invoice": invoice_id}).data
    assert payment.payment.type == "payment_intent"
    return client.v1.payment_intents.retrieve(payment.payment.payment_intent,
                                              params={"expand": ["latest_charge"]})


def _error(call):
    with pytest.raises(stripe.StripeError) as info:
        call()
    return info.value


# the catalog ---------------------------------------------------------------------------

def test_products_and_prices(client):
    product = client.v1.products.create(params={"name": "Gold plan", "metadata": {"k": "v"}})
    assert (product.object, product.active, product.type, product.default_price) == (
        "product", True, "service", None)
    monthly = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 1500,
        "recurring": {"interval": "month"}, "nickname": "monthly"})
    assert (monthly.type, monthly.unit_amount, str(monthly.unit_amount_decimal)) == (
        "recurring", 1500, "1500")  # the package reads the decimal string as a Decimal
    assert (monthly.recurring.interval, monthly.recurring.interval_count,
            monthly.recurring.usage_type) == ("month", 1, "licensed")
    yearly = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 15000,
        "recurring": {"interval": "year"}})
    one_time = client.v1.prices.create(params={
        "product_data": {"name": "Setup"}, "currency": "usd", "unit_amount": 500})
    assert one_time.type == "one_time" and one_time.recurring is None
    assert client.v1.products.retrieve(one_time.product).name == "Setup"
    assert client.v1.prices.retrieve(monthly.id, params={
        "expand": ["product"]}).product.id == product.id
    listed = client.v1.prices.list(params={"product": product.id})
    assert [p.id for p in listed.data] == [yearly.id, monthly.id]
    # a price's amount never changes: a new price replaces it, the old one is deactivated
    error = _error(lambda: client.v1.prices.update(monthly.id, params={"unit_amount": 1600}))
    assert error.code == "parameter_unknown"
    off = client.v1.prices.update(monthly.id, params={"active": False})
    assert off.active is False
    assert [p.id for p in client.v1.prices.list(params={
        "product": product.id, "active": True}).data] == [yearly.id]
    assert [p.id for p in client.v1.prices.list(params={
        "recurring": {"interval": "year"}}).data] == [yearly.id]
    updated = client.v1.products.update(product.id, params={"default_price": yearly.id,
                                                            "description": "The best"})
    assert (updated.default_price, updated.description) == (yearly.id, "The best")
    assert {p.id for p in client.v1.products.list().data} == {product.id, one_time.product}
    assert _error(lambda: client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 100,
        "recurring": {"interval": "month", "usage_type": "metered"}})).code \
        == "emulator_unsupported_parameter"
    assert _error(lambda: client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 100,
        "recurring": {"interval": "fortnight"}})).param == "recurring[interval]"
    assert event_types(client, types=["product.*", "price.*"]) == [
        "product.created", "price.created", "price.created", "product.created",
        "price.created", "price.updated", "product.updated"]


# subscribing ---------------------------------------------------------------------------

def test_a_subscription_paid_with_a_good_card_pays_the_vendor_less_the_fee(
        client, vendor, control, emu, receiver):
    price = _price(client, 2000)
    customer = _customer(client)
    sub = _subscribe(client, vendor, price, customer, fee=10, metadata={"plan": "gold"},
                     expand=["latest_invoice.payments", "latest_invoice.confirmation_secret"])
    assert sub.status == "active" and sub.collection_method == "charge_automatically"
    assert sub.application_fee_percent == 10 and sub.transfer_data.destination == vendor
    assert sub.billing_mode.type == "flexible" and sub.currency == "usd"
    (item,) = sub.items.data
    assert item.price.id == price.id and item.quantity == 1 and item.plan.amount == 2000
    assert item.current_period_start == sub.start_date == sub.billing_cycle_anchor
    assert item.current_period_end - item.current_period_start in (
        28 * DAY, 29 * DAY, 30 * DAY, 31 * DAY)  # a calendar month
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.billing_reason, invoice.amount_due, invoice.amount_paid,
            invoice.amount_remaining) == ("paid", "subscription_create", 2000, 2000, 0)
    assert invoice.parent.type == "subscription_details"
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.parent.subscription_details.metadata.to_dict() == {"plan": "gold"}
    assert (invoice.attempt_count, invoice.attempted, invoice.auto_advance) == (1, True, False)
    assert invoice.status_transitions.paid_at is not None and invoice.number
    assert invoice.period_start == invoice.period_end == sub.created
    (line,) = invoice.lines.data
    assert line.description == "1 × Gold plan (at $20.00 / month)"
    assert line.pricing.price_details.price == price.id and line.amount == 2000
    assert line.parent.subscription_item_details.subscription_item == item.id
    assert (line.period.start, line.period.end) == (item.current_period_start,
                                                   item.current_period_end)
    (payment,) = invoice.payments.data
    assert (payment.status, payment.amount_paid, payment.payment.type) == (
        "paid", 2000, "payment_intent")
    assert invoice.confirmation_secret.client_secret.startswith(
        payment.payment.payment_intent + "_secret_")
    assert "payment_intent" not in invoice and "subscription" not in invoice
    plain = client.v1.invoices.retrieve(invoice.id)
    assert "payments" not in plain and "confirmation_secret" not in plain

    pi = _intent(client, invoice.id)
    assert (pi.status, pi.amount, pi.customer, pi.description) == (
        "succeeded", 2000, customer.id, "Subscription creation")
    assert pi.transfer_data.destination == vendor and pi.application_fee_amount == 200
    assert pi.payment_method == customer.invoice_settings.default_payment_method
    assert pi.latest_charge.balance_transaction is None  # asynchronous capture
    control.post("settle")
    charge = client.v1.charges.retrieve(pi.latest_charge.id)
    assert charge.transfer and charge.application_fee
    assert bts(client) == [("charge", 2000, 88, 1912, "charge", "ch_"),
                           ("transfer", -2000, 0, -2000, "transfer", "tr_"),
                           ("application_fee", 200, 0, 200, "platform_earning", "fee")]
    assert bts(client, vendor) == [("payment", 2000, 200, 1800, "charge", "py_")]
    assert balance(client) == (0, 112)  # the fee less Stripe's 2.9% + 30
    assert balance(client, vendor) == (0, 1800)  # the amount less the application fee
    control.advance(2 * DAY)
    assert balance(client) == (112, 0) and balance(client, vendor) == (1800, 0)
    check_balance_matches(client)
    check_balance_matches(client, vendor)
    assert event_types(client, types=["customer.subscription.*", "invoice.*",
                                      "invoice_payment.*", "payment_intent.*", "charge.*"]) \
        == ["customer.subscription.created", "invoice.created", "payment_intent.created",
            "invoice.finalized", "charge.succeeded", "payment_intent.succeeded",
            "invoice_payment.paid", "invoice.paid", "invoice.payment_succeeded",
            "customer.subscription.updated", "charge.updated"]
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data[0]
    assert created.data.object.status == "incomplete"
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.data.object.status == "active"
    assert updated.data.previous_attributes.status == "incomplete"
    assert emu.wait_idle(5)
    assert {"customer.subscription.created", "invoice.paid",
            "invoice.payment_succeeded"} <= set(receiver.types())


def test_three_periods_three_paid_invoices_to_the_cent(client, vendor, control):
    price = _price(client, 2500)
    customer = _customer(client)
    sub = _subscribe(client, vendor, price, customer, fee=12.5)
    ends = [_period_end(client, sub.id)]
    for _ in range(2):
        _to(control, ends[-1] + HOUR)  # the renewal's draft hour passes too
        ends.append(_period_end(client, sub.id))
    invoices = _invoices(client, sub.id)
    assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices] == [
        ("subscription_create", "paid", 2500), ("subscription_cycle", "paid", 2500),
        ("subscription_cycle", "paid", 2500)]
    start = sub.start_date
    assert [(i.period_start, i.period_end) for i in invoices] == [
        (start, start), (start, ends[0]), (ends[0], ends[1])]  # each looks one period back
    assert [(i.lines.data[0].period.start, i.lines.data[0].period.end) for i in invoices] \
        == [(start, ends[0]), (ends[0], ends[1]), (ends[1], ends[2])]
    assert [i.created for i in invoices[1:]] == ends[:2]
    assert [i.status_transitions.finalized_at for i in invoices[1:]] == [
        ends[0] + HOUR, ends[1] + HOUR]
    assert len({i.number for i in invoices}) == 3
    intents = [_intent(client, i.id) for i in invoices]
    assert [p.description for p in intents] == ["Subscription creation",
                                                "Subscription update", "Subscription update"]
    assert {p.application_fee_amount for p in intents} == {313}  # 12.5% of 2500 = 312.5
    control.post("settle")
    fee = 73 + 30  # 2.9% of 2500 = 72.5, rounded half up, + 30
    assert [row for row in bts(client) if row[0] == "charge"] == [
        ("charge", 2500, fee, 2500 - fee, "charge", "ch_")] * 3
    assert bts(client, vendor) == [("payment", 2500, 313, 2187, "charge", "py_")] * 3
    # the first two periods' funds are available (two days after each payment), the
    # third's (paid just now) pending
    assert balance(client) == (2 * (313 - fee), 313 - fee)
    assert balance(client, vendor) == (2 * 2187, 2187)
    check_balance_matches(client)
    check_balance_matches(client, vendor)
    cycle = event_types(client, types=["customer.subscription.*", "invoice.*",
                                       "invoice_payment.*"])
    assert cycle[-6:] == ["invoice.created", "customer.subscription.updated",
                          "invoice.finalized", "invoice_payment.paid", "invoice.paid",
                          "invoice.payment_succeeded"]
    assert cycle.count("invoice.paid") == 3


def test_a_renewal_is_a_draft_for_an_hour(client, vendor, control):
    sub = _subscribe(client, vendor, _price(client), _customer(client))
    end = _period_end(client, sub.id)
    _to(control, end)
    draft = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    invoice = draft.latest_invoice
    assert (invoice.status, invoice.billing_reason, invoice.attempted) == (
        "draft", "subscription_cycle", False)
    assert invoice.automatically_finalizes_at == invoice.next_payment_attempt == end + HOUR
    assert client.v1.invoice_payments.list(params={"invoice": invoice.id}).data == []
    # the platform can still change the draft: a fee of its own on this invoice
    client.v1.invoices.update(invoice.id, params={"application_fee_amount": 150,
                                                  "metadata": {"note": "promo"}})
    control.advance(HOUR)
    paid = client.v1.invoices.retrieve(invoice.id)
    assert paid.status == "paid" and paid.metadata.to_dict() == {"note": "promo"}
    assert _intent(client, paid.id).application_fee_amount == 150
    assert _error(lambda: client.v1.invoices.update(paid.id, params={
        "application_fee_amount": 10})).code == "invoice_not_editable"


def test_a_draft_keeps_the_terms_it_was_made_with_and_takes_new_ones_while_a_draft(client, vendor, control):
    """Stripe makes a renewal's draft with the subscription's transfer_data: changing the
    subscription afterwards leaves the draft as it was; the draft's own transfer_data can be
    changed or unset ("") until it is finalized. An application fee cannot be unset, nor stay
    on a platform invoice with no destination."""
    sub = _subscribe(client, vendor, _price(client), _customer(client))
    _to(control, _period_end(client, sub.id))
    first_draft = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]}).latest_invoice
    client.v1.subscriptions.update(sub.id, params={"transfer_data": "", "application_fee_percent": ""})
    control.advance(HOUR)
    kept = _intent(client, first_draft.id)
    assert kept.transfer_data.destination == vendor and kept.application_fee_amount == 200
    client.v1.subscriptions.update(sub.id, params={"transfer_data": {"destination": vendor},
                                                   "application_fee_percent": 10})
    _to(control, _period_end(client, sub.id))
    draft = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]}).latest_invoice
    client.v1.invoices.update(draft.id, params={"transfer_data": ""})
    assert _error(lambda: client.v1.invoices.update(draft.id, params={
        "application_fee_amount": 100})).param == "application_fee_amount"  # no destination
    assert _error(lambda: client.v1.invoices.update(draft.id, params={
        "application_fee_amount": ""})).param == "application_fee_amount"
    control.advance(HOUR)
    own = _intent(client, draft.id)
    assert own.transfer_data is None and own.application_fee_amount is None and own.amount == 2000
    _to(control, _period_end(client, sub.id))
    third = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]}).latest_invoice
    client.v1.invoices.update(third.id, params={"application_fee_amount": 250})
    assert _error(lambda: client.v1.invoices.update(third.id, params={
        "transfer_data": ""})).param == "application_fee_amount"
    client.v1.invoices.update(third.id, params={"transfer_data": {"destination": vendor},
                                                "application_fee_amount": 300})
    control.advance(HOUR)
    assert _intent(client, third.id).application_fee_amount == 300
    assert _error(lambda: client.v1.invoices.update(third.id, params={
        "transfer_data": ""})).code == "invoice_not_editable"


# declines and retries ------------------------------------------------------------------

def test_a_declined_renewal_is_past_due_then_a_retry_with_a_working_card_pays_it(
        client, vendor, control):
    price = _price(client, 2000)
    customer = _customer(client)
    sub = _subscribe(client, vendor, price, customer)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail",
                                               params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": failing.id}})
    end = _period_end(client, sub.id)
    _to(control, end + HOUR)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    invoice = sub.latest_invoice
    assert sub.status == "past_due"
    assert (invoice.status, invoice.attempt_count, invoice.amount_remaining) == (
        "open", 1, 2000)
    assert invoice.next_payment_attempt == end + HOUR + 3 * DAY
    pi = _intent(client, invoice.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == "generic_decline"
    assert pi.latest_charge.status == "failed"
    assert event_types(client)[-8:] == [
        "invoice.created", "customer.subscription.updated", "payment_intent.created",
        "invoice.finalized", "charge.failed", "payment_intent.payment_failed",
        "invoice.payment_failed", "customer.subscription.updated"]
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data[0]
    assert failed.data.object.id == invoice.id and failed.data.object.attempt_count == 1

    # the customer fixes their card; the next retry (3 days later) pays the invoice
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": good.id}})
    control.advance(3 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active"
    assert (sub.latest_invoice.status, sub.latest_invoice.attempt_count,
            sub.latest_invoice.next_payment_attempt) == ("paid", 2, None)
    pi = _intent(client, invoice.id)
    assert pi.status == "succeeded" and pi.payment_method == good.id
    assert pi.latest_charge.transfer  # settled on the way: a destination charge as any
    # The retry's events, in order; the charge's settlement (transfer, application fee,
    # charge.updated) comes after its success, at a moment that depends on the machine's load.
    # The first invoice's own settlement may also come this late: only this charge's counts.
    events = list(reversed(list(client.v1.events.list(params={"limit": 100}).auto_paging_iter())))
    events = events[len(events) - [e.type for e in events][::-1].index("customer.updated"):]  # card fixed
    settlement = ("transfer.created", "application_fee.created", "charge.updated")
    charge = pi.latest_charge.id

    def of_this_charge(e):
        obj = e.data.object.to_dict()
        return charge in (obj.get("id"), obj.get("source_transaction"), obj.get("originating_transaction"),
                          obj.get("charge"))

    since = [e.type for e in events if e.type not in settlement or of_this_charge(e)]
    assert [t for t in since if t not in settlement] == [
        "charge.succeeded", "payment_intent.succeeded", "invoice_payment.paid", "invoice.paid",
        "invoice.payment_succeeded", "customer.subscription.updated"], since
    assert sorted(t for t in since if t in settlement) == sorted(settlement), since
    assert since.index("transfer.created") > since.index("charge.succeeded")
    status_changes = [e.data.object.status for e in reversed(client.v1.events.list(params={
        "type": "customer.subscription.updated", "limit": 100}).data)]
    assert status_changes[-2:] == ["past_due", "active"]
    control.post("settle")
    assert bts(client, vendor) == [("payment", 2000, 200, 1800, "charge", "py_")] * 2
    check_balance_matches(client)


def test_paying_an_open_invoice_now(client, vendor, control):
    customer = _customer(client)
    sub = _subscribe(client, vendor, _price(client, 2000), customer)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail",
                                               params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    _to(control, _period_end(client, sub.id) + HOUR)
    invoice = client.v1.subscriptions.retrieve(sub.id).latest_invoice
    error = _error(lambda: client.v1.invoices.pay(invoice))
    assert isinstance(error, stripe.CardError) and error.code == "card_declined"
    assert client.v1.invoices.retrieve(invoice).attempt_count == 1  # manual: not counted
    paid = client.v1.invoices.pay(invoice, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid" and paid.attempt_count == 1
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert _error(lambda: client.v1.invoices.pay(invoice)).code == "invoice_already_paid"
    assert event_types(client).count("invoice.payment_failed") == 2


def test_after_the_last_retry_the_subscription_is_canceled(client, vendor, control):
    customer = _customer(client, "pm_card_chargeCustomerFail")
    sub = _subscribe(client, vendor, _price(client), customer,
                     payment_behavior="default_incomplete")
    assert sub.status == "incomplete"
    client.v1.invoices.pay(sub.latest_invoice.id, params={"payment_method": "pm_card_visa"})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    end = _period_end(client, sub.id)
    attempts = [end + HOUR, end + HOUR + 3 * DAY, end + HOUR + 8 * DAY, end + HOUR + 15 * DAY]
    _to(control, attempts[2] + 1)
    invoice = client.v1.subscriptions.retrieve(sub.id, params={
        "expand": ["latest_invoice"]}).latest_invoice
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (3, attempts[3])
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    _to(control, attempts[3])
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "canceled" and sub.cancellation_details.reason == "payment_failed"
    assert sub.ended_at == sub.canceled_at == attempts[3]
    assert (sub.latest_invoice.status, sub.latest_invoice.attempt_count,
            sub.latest_invoice.next_payment_attempt) == ("open", 4, None)
    assert event_types(client).count("invoice.payment_failed") == 4
    # (the first invoice's charge settles a moment after it was paid: under load, this late)
    settlement = ("transfer.created", "application_fee.created", "charge.updated", "balance.available")
    assert [t for t in event_types(client) if t not in settlement][-2:] == [
        "invoice.payment_failed", "customer.subscription.deleted"]
    _to(control, end + 40 * DAY)  # no more invoices for a canceled subscription
    assert len(_invoices(client, sub.id)) == 2


def test_the_retry_schedule_and_final_status_are_settings(client, vendor, control):
    assert control.get("billing") == {"retry_days": [3, 5, 7], "after_retries": "cancel"}
    control.post("billing", retry_days=[1, 2], after_retries="unpaid")
    customer = _customer(client, "pm_card_chargeCustomerFail")
    sub = _subscribe(client, vendor, _price(client), customer,
                     payment_behavior="default_incomplete")
    client.v1.invoices.pay(sub.latest_invoice.id, params={"payment_method": "pm_card_visa"})
    end = _period_end(client, sub.id)
    _to(control, end + HOUR + 3 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "unpaid" and sub.latest_invoice.attempt_count == 3
    # unpaid: the next renewal's invoice is made but not attempted
    _to(control, _period_end(client, sub.id) + 2 * HOUR)
    latest = client.v1.subscriptions.retrieve(sub.id, params={
        "expand": ["latest_invoice"]}).latest_invoice
    assert (latest.status, latest.attempted, latest.auto_advance) == ("open", False, False)
    resp = requests.post(control.url + "/_emulator/billing", json={"retry_days": [0]})
    assert resp.status_code == 400


# 3-D Secure and incomplete subscriptions -----------------------------------------------

def test_a_first_invoice_needing_3d_secure_waits_for_the_customer(client, vendor, control):
    customer = _customer(client, "pm_card_authenticationRequired")
    sub = _subscribe(client, vendor, _price(client, 2000), customer,
                     expand=["latest_invoice.confirmation_secret"])
    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.attempted, invoice.amount_remaining) == ("open", True, 2000)
    pi = _intent(client, invoice.id)
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    assert invoice.confirmation_secret.client_secret == pi.client_secret
    assert "invoice.payment_action_required" in event_types(client)
    assert "invoice.payment_failed" not in event_types(client)
    control.post("payment_intents/%s/authenticate" % pi.id)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert event_types(client)[-6:] == [
        "charge.succeeded", "payment_intent.succeeded", "invoice_payment.paid",
        "invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"]


def test_a_card_authenticated_once_pays_its_renewals_off_session(client, vendor, control):
    customer = _customer(client, "pm_card_authenticationRequiredOnSetup")
    sub = _subscribe(client, vendor, _price(client), customer)
    pi = _intent(client, sub.latest_invoice.id)
    assert pi.status == "requires_action" and pi.setup_future_usage == "off_session"
    control.post("payment_intents/%s/authenticate" % pi.id)
    _to(control, _period_end(client, sub.id) + HOUR)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"


def test_a_renewal_needing_3d_secure_is_past_due_until_the_customer_authenticates(
        client, vendor, control):
    customer = _customer(client)
    sub = _subscribe(client, vendor, _price(client), customer)
    card = client.v1.payment_methods.attach("pm_card_authenticationRequired",
                                            params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": card.id})
    _to(control, _period_end(client, sub.id) + HOUR)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due"
    assert sub.latest_invoice.next_payment_attempt is None  # no retries: it waits
    pi = _intent(client, sub.latest_invoice.id)
    assert pi.status == "requires_action"
    assert event_types(client)[-2:] == ["invoice.payment_action_required",
                                        "customer.subscription.updated"]
    control.post("payment_intents/%s/authenticate" % pi.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_default_incomplete_is_paid_by_the_client_confirming_its_payment_intent(
        client, vendor, control):
    customer = client.v1.customers.create(params={"email": "new@example.com"})
    sub = _subscribe(client, vendor, _price(client, 2000), customer,
                     payment_behavior="default_incomplete",
                     payment_settings={"save_default_payment_method": "on_subscription"},
                     expand=["latest_invoice.confirmation_secret"])
    assert sub.status == "incomplete" and sub.default_payment_method is None
    secret = sub.latest_invoice.confirmation_secret
    assert secret.type == "payment_intent"
    pi_id = secret.client_secret.split("_secret_")[0]
    pi = client.v1.payment_intents.retrieve(pi_id)
    assert pi.status == "requires_payment_method" and pi.amount == 2000
    assert "invoice.payment_failed" not in event_types(client)  # nothing attempted
    # what Stripe.js does with the client secret
    client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert sub.default_payment_method == client.v1.payment_intents.retrieve(
        pi_id).payment_method  # saved on the subscription, attached to the customer
    assert client.v1.payment_methods.retrieve(sub.default_payment_method).customer \
        == customer.id
    _to(control, _period_end(client, sub.id) + HOUR)
    assert client.v1.invoices.list(params={"subscription": sub.id}).data[0].status == "paid"


def test_an_unpaid_first_invoice_expires_after_23_hours(client, vendor, control):
    customer = _customer(client, "pm_card_chargeCustomerFail")
    sub = _subscribe(client, vendor, _price(client), customer)
    assert sub.status == "incomplete"
    invoice = sub.latest_invoice
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open", 1, None)  # the first invoice is not retried
    control.advance(23 * HOUR - 60)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    control.advance(60)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "incomplete_expired" and sub.ended_at is not None
    assert sub.latest_invoice.status == "void"
    assert sub.latest_invoice.status_transitions.voided_at == sub.ended_at
    pi = _intent(client, invoice.id)
    assert (pi.status, pi.cancellation_reason) == ("canceled", "void_invoice")
    assert event_types(client)[-3:] == ["payment_intent.canceled", "invoice.voided",
                                        "customer.subscription.updated"]
    assert _error(lambda: client.v1.subscriptions.update(sub.id, params={
        "metadata": {"a": "b"}})).http_status == 400
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "ended"}).data] \
        == [sub.id]


def test_error_if_incomplete_makes_nothing_when_the_first_payment_fails(client, vendor):
    declining = _customer(client, "pm_card_chargeCustomerFail")
    error = _error(lambda: _subscribe(client, vendor, _price(client), declining,
                                      payment_behavior="error_if_incomplete"))
    assert isinstance(error, stripe.CardError) and error.code == "card_declined"
    needs_action = _customer(client, "pm_card_authenticationRequired")
    error = _error(lambda: _subscribe(client, vendor, _price(client), needs_action,
                                      payment_behavior="error_if_incomplete"))
    assert error.code == "invoice_payment_intent_requires_action"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert client.v1.invoices.list().data == []
    nothing = client.v1.customers.create(params={"email": "x@example.com"})
    error = _error(lambda: _subscribe(client, vendor, _price(client), nothing))
    assert error.code == "resource_missing" and "default payment method" in error.user_message


# cancellation --------------------------------------------------------------------------

def test_cancel_at_period_end(client, vendor, control):
    sub = _subscribe(client, vendor, _price(client), _customer(client))
    end = _period_end(client, sub.id)
    scheduled = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert scheduled.status == "active" and scheduled.cancel_at == end
    assert scheduled.cancellation_details.reason == "cancellation_requested"
    requested_at = scheduled.canceled_at
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.data.previous_attributes.cancel_at_period_end is False
    _to(control, end - 60)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    _to(control, end + 2 * HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at, ended.canceled_at) == ("canceled", end, requested_at)
    assert len(_invoices(client, sub.id)) == 1  # no renewal
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert [e.data.object.id for e in deleted] == [sub.id]
    assert deleted[0].data.object.status == "canceled"
    assert client.v1.subscriptions.list().data == []  # canceled ones only by status
    assert [s.id for s in client.v1.subscriptions.list(params={
        "status": "canceled"}).data] == [sub.id]


def test_resuming_before_the_period_ends(client, vendor, control):
    sub = _subscribe(client, vendor, _price(client), _customer(client))
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    resumed = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert (resumed.cancel_at, resumed.canceled_at, resumed.cancellation_details.reason) == (
        None, None, None)
    _to(control, _period_end(client, sub.id) + HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert len(_invoices(client, sub.id)) == 2


def test_cancel_now(client, vendor, control):
    sub = _subscribe(client, vendor, _price(client), _customer(client))
    now = _now(control)
    canceled = client.v1.subscriptions.cancel(sub.id, params={
        "cancellation_details": {"comment": "moving away"}})
    assert canceled.status == "canceled" and canceled.ended_at - now in (0, 1)
    assert canceled.cancellation_details.reason == "cancellation_requested"
    assert canceled.cancellation_details.comment == "moving away"
    assert event_types(client)[-1] == "customer.subscription.deleted"
    assert _error(lambda: client.v1.subscriptions.cancel(sub.id)).http_status == 400
    assert _error(lambda: client.v1.subscriptions.cancel(sub.id, params={
        "prorate": True})).code == "emulator_unsupported_parameter"
    _to(control, _period_end(client, sub.id) + 2 * HOUR)
    assert len(_invoices(client, sub.id)) == 1


# changes -------------------------------------------------------------------------------

def test_a_price_change_is_billed_from_the_next_period(client, vendor, control):
    old = _price(client, 2000)
    sub = _subscribe(client, vendor, old, _customer(client))
    new = client.v1.prices.create(params={"product": old.product, "currency": "usd",
                                          "unit_amount": 3000,
                                          "recurring": {"interval": "month"}})
    client.v1.prices.update(old.id, params={"active": False})
    item = sub.items.data[0]
    error = _error(lambda: client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": new.id}]}))
    assert error.code == "emulator_unsupported_parameter" and error.param == \
        "proration_behavior"
    changed = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": new.id}], "proration_behavior": "none"})
    assert [(i.id, i.price.id) for i in changed.items.data] == [(item.id, new.id)]
    assert len(_invoices(client, sub.id)) == 1  # nothing invoiced now
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.previous_attributes["items"]["data"][0]["price"]["id"] == old.id
    _to(control, _period_end(client, sub.id) + HOUR)
    renewal = _invoices(client, sub.id)[-1]
    assert (renewal.amount_paid, renewal.lines.data[0].pricing.price_details.price) == (
        3000, new.id)
    assert _intent(client, renewal.id).application_fee_amount == 300
    # an inactive price cannot be subscribed to; a price in another interval is not modelled
    error = _error(lambda: _subscribe(client, vendor, old, _customer(client)))
    assert "inactive" in error.user_message and error.param == "items[0][price]"
    yearly = client.v1.prices.create(params={"product": old.product, "currency": "usd",
                                             "unit_amount": 20000,
                                             "recurring": {"interval": "year"}})
    error = _error(lambda: client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": yearly.id}], "proration_behavior": "none"}))
    assert error.code == "emulator_unsupported_parameter"


def test_updates_and_lists(client, vendor, control):
    price = _price(client)
    first, second = _customer(client), _customer(client)
    a = _subscribe(client, vendor, price, first)
    b = _subscribe(client, vendor, price, second)
    assert [s.id for s in client.v1.subscriptions.list(params={"customer": first.id}).data] \
        == [a.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"price": price.id}).data] \
        == [b.id, a.id]
    page = client.v1.subscriptions.list(params={"limit": 1})
    assert page.has_more and [s.id for s in page.data] == [b.id]
    assert [s.id for s in page.auto_paging_iter()] == [b.id, a.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "past_due"}).data] \
        == []
    updated = client.v1.subscriptions.update(a.id, params={
        "metadata": {"tier": "gold"}, "description": "Gold for A",
        "application_fee_percent": 20})
    assert (updated.metadata.to_dict(), updated.description,
            updated.application_fee_percent) == ({"tier": "gold"}, "Gold for A", 20)
    assert [i.id for i in client.v1.invoices.list(params={"customer": first.id}).data] == [
        a.latest_invoice.id]
    assert {i.id for i in client.v1.invoices.list(params={"status": "paid"}).data} == {
        a.latest_invoice.id, b.latest_invoice.id}
    items = client.v1.subscription_items.list(params={"subscription": a.id}).data
    assert [i.id for i in items] == [a.items.data[0].id]
    assert client.v1.subscription_items.retrieve(items[0].id).price.id == price.id
    lines = client.v1.invoices.line_items.list(a.latest_invoice.id).data
    assert [li.amount for li in lines] == [2000]
    _to(control, _period_end(client, a.id) + HOUR)
    assert _intent(client, _invoices(client, a.id)[-1].id).application_fee_amount == 400


# refunds -------------------------------------------------------------------------------

def test_refunding_an_invoice_charge_reverses_the_transfer_and_fee(client, vendor, control):
    sub = _subscribe(client, vendor, _price(client, 2000), _customer(client))
    pi = _intent(client, sub.latest_invoice.id)
    refund = client.v1.refunds.create(params={
        "payment_intent": pi.id, "reverse_transfer": True, "refund_application_fee": True})
    assert refund.amount == 2000 and refund.transfer_reversal.startswith("trr_")
    assert bts(client)[3:] == [
        ("refund", -2000, 0, -2000, "refund", "re_"),
        ("application_fee_refund", -200, 0, -200, "platform_earning_refund", "fr_"),
        ("transfer_refund", 2000, 0, 2000, "transfer_reversal", "trr")]
    assert bts(client, vendor)[1:] == [("payment_refund", -2000, -200, -1800, "refund", "pyr")]
    assert balance(client) == (0, -88)  # the platform keeps Stripe's fee only
    assert balance(client, vendor) == (0, 0)
    partial = _subscribe(client, vendor, _price(client, 3000), _customer(client))
    charge = _intent(client, partial.latest_invoice.id).latest_charge.id
    client.v1.refunds.create(params={"charge": charge, "amount": 1000,
                                     "reverse_transfer": True})
    assert bts(client, vendor)[-1] == ("payment_refund", -1000, 0, -1000, "refund", "pyr")
    # the invoice stays paid: a refund is the charge's business
    assert client.v1.invoices.retrieve(partial.latest_invoice.id).status == "paid"
    check_balance_matches(client)
    check_balance_matches(client, vendor)


# the API's rules -----------------------------------------------------------------------

def test_parameters_expansion_and_idempotency(client, vendor, target):
    price = _price(client)
    customer = _customer(client)
    base = {"customer": customer.id, "items": [{"price": price.id}],
            "transfer_data": {"destination": vendor}}
    assert _error(lambda: client.v1.subscriptions.create(params=dict(
        base, colour="blue"))).code == "parameter_unknown"
    for extra in ({"collection_method": "send_invoice"}, {"trial_period_days": 7},
                  {"payment_behavior": "pending_if_incomplete"},
                  {"on_behalf_of": vendor}):
        error = _error(lambda: client.v1.subscriptions.create(params=dict(base, **extra)))
        assert error.code == "emulator_unsupported_parameter", extra
    error = _error(lambda: client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}],
        "application_fee_percent": 5}))  # a fee needs a destination (or Stripe-Account)
    assert error.param == "application_fee_percent"
    assert _error(lambda: client.v1.subscriptions.create(params=dict(
        base, application_fee_percent=12.345))).param == "application_fee_percent"
    assert _error(lambda: client.v1.subscriptions.create(params=dict(
        base, expand=["latest_invoice.customer_email"]))).user_message.startswith(
        "This property cannot be expanded")
    sub = client.v1.subscriptions.create(params=dict(base, expand=[
        "customer", "latest_invoice.payments", "items.data.price.product",
        "latest_invoice.parent.subscription_details.subscription"]),
        options=opts(key="sub-1"))
    assert sub.customer.id == customer.id
    assert sub.items.data[0].price.product.name == "Gold plan"
    assert sub.latest_invoice.parent.subscription_details.subscription.id == sub.id
    again = client.v1.subscriptions.create(params=dict(base, expand=[
        "customer", "latest_invoice.payments", "items.data.price.product",
        "latest_invoice.parent.subscription_details.subscription"]),
        options=opts(key="sub-1"))
    assert again.id == sub.id
    assert len(client.v1.subscriptions.list().data) == 1
    invoice = client.v1.invoices.retrieve(sub.latest_invoice.id, params={
        "expand": ["payments.data.payment.payment_intent"]})
    assert invoice.payments.data[0].payment.payment_intent.status == "succeeded"
    pi_id = invoice.payments.data[0].payment.payment_intent.id
    assert _error(lambda: client.v1.payment_intents.cancel(pi_id)).http_status == 400
    listed = client.v1.invoice_payments.list(params={
        "payment": {"type": "payment_intent", "payment_intent": pi_id}}).data
    assert [p.invoice for p in listed] == [invoice.id]
    assert client.v1.invoice_payments.retrieve(listed[0].id).amount_paid == 2000
    assert _error(lambda: client.v1.subscriptions.retrieve("sub_nope")).http_status == 404
    assert _error(lambda: client.v1.invoices.retrieve("in_nope")).http_status == 404
    # a connected account's subscriptions are its own (direct charges with a fee percent)
    assert client.v1.subscriptions.list(options=opts(vendor)).data == []


def test_the_emulator_request_log_counts_the_new_routes(client, vendor, control):
    _subscribe(client, vendor, _price(client), _customer(client))
    paths = {(r["method"], r["path"]) for r in control.get("requests")["data"]}
    assert ("POST", "/v1/subscriptions") in paths and ("POST", "/v1/prices") in paths


def test_inline_prices_and_quantities(client, vendor, control):
    product = client.v1.products.create(params={"name": "Seat"})
    sub = client.v1.subscriptions.create(params={
        "customer": _customer(client).id, "transfer_data": {"destination": vendor},
        "items": [{"price_data": {"currency": "usd", "product": product.id,
                                  "unit_amount": 700, "recurring": {"interval": "week"}},
                   "quantity": 3}]})
    (item,) = sub.items.data
    assert (item.quantity, item.price.unit_amount, item.price.active) == (3, 700, False)
    assert item.current_period_end - item.current_period_start == 7 * DAY
    assert sub.latest_invoice and client.v1.invoices.retrieve(
        sub.latest_invoice).amount_paid == 2100
    line = client.v1.invoices.line_items.list(sub.latest_invoice).data[0]
    assert line.description == "3 × Seat (at $7.00 / week)" and line.quantity == 3
    client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "quantity": 1}], "proration_behavior": "none"})
    _to(control, item.current_period_end + HOUR)
    assert _invoices(client, sub.id)[-1].amount_paid == 700


def test_a_subscription_on_a_connected_account_is_a_direct_charge_with_a_fee(
        client, vendor, control):
    account = opts(vendor)
    product = client.v1.products.create(params={"name": "Club"}, options=account)
    price = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 1000,
        "recurring": {"interval": "month"}}, options=account)
    customer = client.v1.customers.create(params={
        "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}}, options=account)
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}],
        "application_fee_percent": 5}, options=account)
    assert sub.status == "active"
    assert client.v1.subscriptions.list().data == []  # not the platform's
    control.post("settle")
    assert bts(client, vendor) == [("charge", 1000, 59 + 50, 891, "charge", "ch_")]
    assert bts(client) == [("application_fee", 50, 0, 50, "platform_earning", "fee")]


def test_deleting_the_customer_cancels_its_subscriptions(client, vendor):
    customer = _customer(client)
    sub = _subscribe(client, vendor, _price(client), customer)
    client.v1.customers.delete(customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert event_types(client)[-2:] == ["customer.subscription.deleted", "customer.deleted"]


def test_a_detached_default_card_is_no_payment_method(client, vendor, control):
    customer = _customer(client)
    sub = _subscribe(client, vendor, _price(client), customer)
    client.v1.payment_methods.detach(customer.invoice_settings.default_payment_method)
    _to(control, _period_end(client, sub.id) + HOUR)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due"
    assert (sub.latest_invoice.attempt_count, sub.latest_invoice.status) == (1, "open")
    assert sub.latest_invoice.next_payment_attempt is not None  # retried on schedule
    assert event_types(client)[-2:] == ["invoice.payment_failed",
                                        "customer.subscription.updated"]


def test_canceling_stops_collection_of_the_customers_open_invoices(client, vendor, control):
    """Stripe's default on cancel: every finalized open invoice of the customer stops being
    collected automatically (and can still be paid by hand)."""
    customer = client.v1.customers.create(params={"email": "c@example.com"})
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    price = client.v1.prices.create(params={"currency": "usd", "unit_amount": 1000,
                                            "recurring": {"interval": "month"},
                                            "product_data": {"name": "Box"}})
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}],
                                                 "default_payment_method": good.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    control.advance(32 * 86400)
    open_invoice = client.v1.invoices.list(params={"subscription": sub.id, "status": "open"}).data[0]
    assert open_invoice.next_payment_attempt is not None
    client.v1.subscriptions.cancel(sub.id)
    after = client.v1.invoices.retrieve(open_invoice.id)
    assert (after.status, after.auto_advance, after.next_payment_attempt) == ("open", False, None)
    resumed = client.v1.invoices.update(open_invoice.id, params={"auto_advance": True})
    assert resumed.auto_advance is True and resumed.next_payment_attempt is not None  # the next retry
