"""Subscriptions (charge_automatically) and their items; how they move with the clock.

A subscription bills its items' recurring Prices in advance, one period at a time from its
`billing_cycle_anchor` (its creation): month and year periods end on the anchor's day of
the month (the last day of a shorter month), weeks and days after that many days. As at the
current API the period is on each item (`items.data[].current_period_start/end`), and new
subscriptions use the `flexible` billing mode (since 2025-09-30.clover).

Creation makes the first invoice (`subscription_create`), finalized at once, and, unless
`payment_behavior=default_incomplete`, pays it on-session (`off_session=false` by default)
with `default_payment_method` or the customer's `invoice_settings.default_payment_method`:
`incomplete` until it is paid, then `active`; `incomplete_expired` (its invoice voided) 23
hours after creation if it never is. `error_if_incomplete` makes nothing and answers the
402 when the first payment would fail or need 3-D Secure. When the clock passes a period's
end the subscription renews: a `subscription_cycle` invoice (a draft for an hour, then
finalized and paid off-session; see invoices.py for retries), `past_due` while a renewal is
unpaid, `active` again once it is paid. `cancel_at_period_end` ends it at the period's end;
`DELETE` ends it now (`customer.subscription.deleted` either way); invoices it left open
stay open, as on Stripe (void them, or set their `auto_advance` to false).

Updates: metadata, description, default_payment_method, cancel_at_period_end,
cancellation_details, transfer_data, application_fee_percent, payment_settings and the items
(price, quantity, added, deleted) with `proration_behavior=none` only: the new prices are
billed from the next renewal. Prorations, trials, discounts, taxes, schedules, pauses,
`send_invoice` and `on_behalf_of` are not modelled (400 `emulator_unsupported_parameter`).
"""
import calendar
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from .. import money
from ..errors import StripeError, invalid, missing, not_found
from ..forms import Params
from ..routes import route
from ..shapes import complete
from ..store import created_filter, paginate
from .accounts import check_destination_region, require_transfers
from .common import apply_metadata, list_response, show
from .customers import find as find_customer
from .invoices import (NO_PAYMENT_METHOD, billing_settings, collect, create_invoice,
                       default_payment_method, finalize, predicted_failure)
from .payment_methods import resolve
from .products import find_price, inline_price, supported, unsupported

DAY = 86400
EXPIRES_AFTER = 23 * 3600  # an unpaid first invoice: incomplete -> incomplete_expired
CREATE_PARAMS = ("customer", "items", "default_payment_method", "payment_behavior",
                 "transfer_data", "application_fee_percent", "metadata", "off_session",
                 "collection_method", "description", "payment_settings",
                 "cancel_at_period_end", "billing_mode")
UPDATE_PARAMS = ("items", "proration_behavior", "cancel_at_period_end",
                 "default_payment_method", "metadata", "description", "payment_behavior",
                 "off_session", "transfer_data", "application_fee_percent",
                 "cancellation_details", "payment_settings", "collection_method")
# what an incomplete subscription may change before its first invoice is paid
INCOMPLETE_UPDATES = ("default_payment_method", "metadata", "description",
                      "cancellation_details", "payment_settings", "payment_behavior",
                      "off_session", "expand")
BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete",
             "pending_if_incomplete")
LIVE = ("active", "past_due", "unpaid")
ENDED = ("canceled", "incomplete_expired")
STATUSES = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired",
            "past_due", "paused", "trialing", "unpaid")


def add_periods(anchor, interval, count, n):
    """The end of the `n`th period of `count` `interval`s from `anchor` (unix seconds, UTC):
    months keep the anchor's day of the month, clamped to the month's last day."""
    if interval == "day":
        return anchor + n * count * DAY
    if interval == "week":
        return anchor + n * count * 7 * DAY
    months = n * count * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(anchor, timezone.utc)
    years, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + years, month + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def _percent(p, key, name=None):
    """A percentage parameter: 0 to 100 with at most two decimals ("" unsets: None)."""
    name = name or key
    raw = p.raw(key)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise invalid("Invalid decimal: %s" % raw, name) from None
    if not value.is_finite() or value < 0 or value > 100 or \
            value != value.quantize(Decimal("0.01")):
        raise invalid("%s must be a decimal between 0 and 100 with at most two decimal "
                      "places." % name, name)
    return float(value)


def _transfer_data(ctx, p):
    """`transfer_data` ({destination, amount_percent}); "" unsets it (None)."""
    if p.raw("transfer_data") == "":
        return None
    td = supported(p.sub("transfer_data"), "transfer_data", "destination", "amount_percent")
    dest = td.str("destination", required=True)
    if not ctx.is_platform:
        raise invalid("transfer_data cannot be used on a connected account.", "transfer_data")
    require_transfers(ctx.emu, dest, "transfer_data[destination]")
    check_destination_region(ctx.emu, dest, None)
    return {"amount_percent": _percent(td, "amount_percent", "transfer_data[amount_percent]"),
            "destination": dest}


def _fee_rules(ctx, percent, transfer_data):
    if percent is not None and ctx.is_platform and not transfer_data:
        raise invalid("Can only apply an application_fee_percent when the subscription is "
                      "made on behalf of another account (using an OAuth key or "
                      "Stripe-Account header) or when using `transfer_data[destination]`.",
                      "application_fee_percent")
    if percent is not None and transfer_data and \
            transfer_data.get("amount_percent") is not None:
        raise invalid("You cannot use both application_fee_percent and "
                      "transfer_data[amount_percent].", "application_fee_percent")


def _payment_settings(p, current=None):
    settings = dict(current or {"payment_method_options": None, "payment_method_types": None,
                                "save_default_payment_method": "off"})
    if p.has("payment_settings"):
        ps = supported(p.sub("payment_settings"), "payment_settings",
                       "save_default_payment_method")
        if ps.has("save_default_payment_method"):
            settings["save_default_payment_method"] = ps.str(
                "save_default_payment_method", choices=("off", "on_subscription"))
    return settings


def _collection(p):
    if p.str("collection_method", "charge_automatically",
             choices=("charge_automatically", "send_invoice")) != "charge_automatically":
        raise StripeError("The Stripe emulator models subscriptions with "
                          "collection_method=charge_automatically only (Stripe also sends "
                          "invoices).", code="emulator_unsupported_parameter",
                          param="collection_method", saved=False)


def _behavior(p):
    behavior = p.str("payment_behavior", "allow_incomplete", choices=BEHAVIORS)
    if behavior == "pending_if_incomplete":
        raise StripeError("The Stripe emulator does not model pending updates "
                          "(payment_behavior=pending_if_incomplete).",
                          code="emulator_unsupported_parameter", param="payment_behavior",
                          saved=False)
    return behavior


def _billing_mode(emu, p):
    mode = {"flexible": {"proration_discounts": "itemized"}, "type": "flexible",
            "updated_at": emu.now()}
    if p.has("billing_mode"):
        bm = supported(p.sub("billing_mode"), "billing_mode", "type", "flexible")
        mode["type"] = bm.str("type", required=True, choices=("classic", "flexible"))
        if mode["type"] == "classic":
            mode.update(flexible=None, updated_at=None)
        elif bm.has("flexible"):
            flex = supported(bm.sub("flexible"), "billing_mode[flexible]",
                             "proration_discounts")
            mode["flexible"]["proration_discounts"] = flex.str(
                "proration_discounts", "itemized", choices=("included", "itemized"))
    return mode


def _default_pm(ctx, customer, value, param="default_payment_method"):
    """The subscription's default PaymentMethod: one attached to its customer."""
    pm = resolve(ctx.emu, ctx.account, value, param)
    if pm["customer"] != customer["id"]:
        raise StripeError("The customer does not have a payment method with the ID %s. The "
                          "payment method must be attached to the customer." % value,
                          param=param)
    return pm


def _item_price(ctx, item, where):
    """The Price of one `items[i]` (`price`, `plan` or `price_data`), a recurring one."""
    emu = ctx.emu
    given = [k for k in ("price", "plan", "price_data") if item.has(k)]
    if len(given) > 1:
        raise invalid("You may only specify one of these parameters: %s." % ", ".join(given),
                      "%s[%s]" % (where, given[1]))
    if not given:
        return None
    if given[0] == "price_data":
        return inline_price(emu, ctx.account, item.dict("price_data"), where + "[price_data]")
    param = "%s[%s]" % (where, given[0])
    price = find_price(emu, ctx.account, item.str(given[0]), param)
    if price["type"] != "recurring":
        raise invalid("The price specified is set to `type=one_time` but this field only "
                      "accepts prices with `type=recurring`.", param)
    if not price["active"]:
        raise invalid("The price specified is inactive. This field only accepts active "
                      "prices.", param)
    return price


def _check_prices(prices, currency=None, interval=None):
    """All items in one currency and one billing interval (the emulator's periods are the
    subscription's); no price twice."""
    seen = set()
    for where, price in prices:
        rec = price["recurring"]
        currency = currency or price["currency"]
        interval = interval or (rec["interval"], rec["interval_count"])
        if price["currency"] != currency:
            raise invalid("The price specified has currency `%s`, which does not match the "
                          "subscription's currency `%s`." % (price["currency"], currency),
                          where)
        if (rec["interval"], rec["interval_count"]) != interval:
            raise StripeError("The Stripe emulator bills all of a subscription's items on "
                              "one interval (Stripe's flexible billing mode can mix them).",
                              code="emulator_unsupported_parameter", param=where, saved=False)
        if price["id"] in seen:
            raise invalid("Cannot add multiple subscription items with the same price.",
                          where)
        seen.add(price["id"])
    return currency, interval


def _new_items(ctx, p):
    raw = p.list("items")
    if not raw:
        raise missing("items")
    if len(raw) > 20:
        raise invalid("You may pass up to 20 items.", "items")
    out = []
    for i, r in enumerate(raw):
        where = "items[%d]" % i
        item = supported(Params(r), where, "price", "plan", "price_data", "quantity",
                         "metadata")
        price = _item_price(ctx, item, where)
        if price is None:
            raise missing(where + "[price]")
        out.append((where, price, item.int("quantity", 1, minimum=0),
                    item.metadata() or {}))
    return out


def _add_item(emu, sub, price, quantity, metadata):
    start, end = sub["_period"]
    item = {"id": emu.new_id("si"), "object": "subscription_item", "billing_thresholds": None,
            "created": emu.now(), "current_period_end": end, "current_period_start": start,
            "discounts": [], "metadata": metadata, "price": price["id"], "quantity": quantity,
            "subscription": sub["id"], "tax_rates": []}
    emu.store.add("subscription_item", sub["_account"], item)
    sub["_items"].append(item["id"])
    return item


def _total(emu, sub):
    total = 0
    for iid in sub["_items"]:
        item = emu.store.find(iid)
        total += emu.store.find(item["price"])["unit_amount"] * item["quantity"]
    return total


@route("POST", "/v1/subscriptions")
def create_subscription(ctx):
    """POST /v1/subscriptions: the subscription, its first invoice finalized and (unless
    `default_incomplete`) paid now."""
    p = ctx.params.check(*CREATE_PARAMS)
    emu = ctx.emu
    if not p.has("customer"):
        raise missing("customer")
    customer = find_customer(emu, ctx.account, p.str("customer"))
    _collection(p)
    behavior = _behavior(p)
    settings = _payment_settings(p)
    percent = _percent(p, "application_fee_percent")
    transfer_data = _transfer_data(ctx, p) if p.has("transfer_data") else None
    _fee_rules(ctx, percent, transfer_data)
    mode = _billing_mode(emu, p)
    pm = None
    if p.str("default_payment_method"):
        pm = _default_pm(ctx, customer, p.str("default_payment_method"))
    off_session = p.bool("off_session", False)
    items = _new_items(ctx, p)
    cur, (interval, count) = _check_prices([(w, price) for w, price, _, _ in items])
    total = sum(price["unit_amount"] * quantity for _, price, quantity, _ in items)
    if 0 < total < money.minimum(cur):
        raise StripeError("Amount must be at least %d %s minor units" % (
            money.minimum(cur), cur), code="amount_too_small", param="items", saved=False)
    payer = pm or default_payment_method(emu, {"customer": customer["id"]})
    if behavior != "default_incomplete" and total and payer is None:
        raise StripeError(NO_PAYMENT_METHOD, code="resource_missing")
    if behavior == "error_if_incomplete" and total:
        failure = predicted_failure(emu, payer, customer["id"], off_session)
        if failure is not None:
            raise failure
    now = emu.now()
    end = add_periods(now, interval, count, 1)
    cancel_at_end = p.bool("cancel_at_period_end", False)
    sub = {
        "id": emu.new_id("sub"), "object": "subscription", "application": None,
        "application_fee_percent": percent,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now, "billing_cycle_anchor_config": None,
        "billing_mode": mode, "billing_schedules": [], "billing_thresholds": None,
        "cancel_at": end if cancel_at_end else None, "cancel_at_period_end": cancel_at_end,
        "canceled_at": now if cancel_at_end else None,
        "cancellation_details": {"comment": None, "feedback": None,
                                 "reason": "cancellation_requested" if cancel_at_end
                                 else None},
        "collection_method": "charge_automatically", "created": now, "currency": cur,
        "customer": customer["id"], "customer_account": None, "days_until_due": None,
        "default_payment_method": pm and pm["id"], "default_source": None,
        "default_tax_rates": [], "description": p.str("description"), "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "custom_fields": None,
                             "description": None, "footer": None,
                             "issuer": {"type": "self"}},
        "latest_invoice": None, "livemode": False, "managed_payments": None,
        "metadata": p.metadata() or {}, "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None, "pause_collection": None, "payment_settings": settings,
        "pending_invoice_item_interval": None, "pending_setup_intent": None,
        "pending_update": None, "schedule": None, "start_date": now, "status": "incomplete",
        "test_clock": None, "transfer_data": transfer_data, "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_items": [], "_period": [now, end], "_period_index": 0,
        "_interval": [interval, count],
    }
    emu.store.add("subscription", ctx.account, sub)
    for _, price, quantity, metadata in items:
        _add_item(emu, sub, price, quantity, metadata)
    inv = create_invoice(emu, sub, "subscription_create", now, now, announce=False)
    sub["latest_invoice"] = inv["id"]
    emu.emit("customer.subscription.created", sub, account=ctx.account)
    emu.emit("invoice.created", inv, account=ctx.account)
    finalize(emu, inv)
    if inv["status"] == "open" and behavior != "default_incomplete":
        try:
            collect(ctx, inv, off_session=off_session, automatic=True)
        except StripeError as error:
            if error.status != 402:
                raise
    return show(ctx, sub)


def _get(ctx):
    sub = ctx.emu.store.find(ctx.args["sid"])
    if sub is None or sub["_kind"] != "subscription" or sub["_account"] != ctx.account:
        raise not_found("subscription", ctx.args["sid"])
    return sub


@route("GET", "/v1/subscriptions/<sid>")
def retrieve_subscription(ctx):
    """GET /v1/subscriptions/{id}."""
    return show(ctx, _get(ctx))


@route("GET", "/v1/subscriptions")
def list_subscriptions(ctx):
    """GET /v1/subscriptions with customer / status / price / collection_method / period
    filters; without `status`, every subscription that is not canceled."""
    p = ctx.params
    customer, price = p.str("customer"), p.str("price") or p.str("plan")
    status = p.str("status", choices=STATUSES)
    method = p.str("collection_method")
    for key in ("automatic_tax", "customer_account", "test_clock"):
        if p.has(key):
            raise unsupported(key)
    start_in, end_in = (created_filter(p, "current_period_start"),
                        created_filter(p, "current_period_end"))
    emu = ctx.emu

    def status_matches(s):
        if status is None:
            return s != "canceled"
        if status == "all":
            return True
        if status == "ended":
            return s in ENDED
        return s == status

    def match(sub):
        prices = {emu.store.find(i)["price"] for i in sub["_items"]}
        return (customer in (None, sub["customer"]) and status_matches(sub["status"])
                and (price is None or price in prices)
                and method in (None, sub["collection_method"])
                and start_in(sub["_period"][0]) and end_in(sub["_period"][1]))
    return list_response(ctx, "subscription", "/v1/subscriptions", match,
                         extra=("customer", "status", "price", "plan", "collection_method",
                                "current_period_start", "current_period_end",
                                "automatic_tax", "customer_account", "test_clock"))


def _update_items(ctx, sub, raw, proration):
    """Apply `items[]` changes (price, quantity, metadata, added, deleted); True when the
    billed items changed."""
    emu = ctx.emu
    changed = False
    plans = []  # (where, existing item or None, price, quantity, metadata, deleted)
    for i, r in enumerate(raw):
        where = "items[%d]" % i
        item = supported(Params(r), where, "id", "price", "plan", "price_data", "quantity",
                         "metadata", "deleted")
        existing = None
        if item.has("id"):
            existing = emu.store.find(item.str("id"))
            if existing is None or existing["_kind"] != "subscription_item" or \
                    existing["subscription"] != sub["id"] or \
                    existing["id"] not in sub["_items"]:
                raise invalid("No such subscription item: '%s'" % item.str("id"),
                              where + "[id]")
        price = _item_price(ctx, item, where)
        if existing is None and price is None:
            raise missing(where + "[price]")
        deleted = item.bool("deleted", False)
        if deleted and existing is None:
            raise missing(where + "[id]")
        quantity = item.int("quantity", minimum=0) if item.has("quantity") else None
        plans.append((where, existing, price, quantity, item, deleted))
    kept = {iid: emu.store.find(iid)["price"] for iid in sub["_items"]}
    for where, existing, price, quantity, item, deleted in plans:
        if deleted:
            kept.pop(existing["id"], None)
        elif existing is not None and price is not None:
            kept[existing["id"]] = price["id"]
        elif existing is None:
            kept[where] = price["id"]
    if not kept:
        raise invalid("A subscription must have at least one item.", "items")
    _check_prices([(w, emu.store.find(pid)) for w, pid in kept.items()], sub["currency"],
                  tuple(sub["_interval"]))
    billed = any(deleted or price is not None or quantity is not None
                 for _, _, price, quantity, _, deleted in plans)
    if billed and proration != "none":
        raise StripeError("The Stripe emulator models item changes with "
                          "proration_behavior=none only (Stripe prorates by default): the new "
                          "items are billed from the next renewal.",
                          code="emulator_unsupported_parameter", param="proration_behavior",
                          saved=False)
    for where, existing, price, quantity, item, deleted in plans:
        if deleted:
            sub["_items"].remove(existing["id"])
            existing["deleted"] = True
            changed = True
        elif existing is None:
            _add_item(emu, sub, price, 1 if quantity is None else quantity,
                      item.metadata() or {})
            changed = True
        else:
            if price is not None and price["id"] != existing["price"]:
                existing["price"] = price["id"]
                changed = True
            if quantity is not None and quantity != existing["quantity"]:
                existing["quantity"] = quantity
                changed = True
            if apply_metadata(existing, item) is not None:
                changed = True
    if 0 < _total(emu, sub) < money.minimum(sub["currency"]):
        raise StripeError("Amount must be at least %d %s minor units" % (
            money.minimum(sub["currency"]), sub["currency"]), code="amount_too_small",
            param="items", saved=False)
    return changed


@route("POST", "/v1/subscriptions/<sid>")
def update_subscription(ctx):
    """POST /v1/subscriptions/{id}; `customer.subscription.updated` with what changed."""
    p = ctx.params.check(*UPDATE_PARAMS)
    emu = ctx.emu
    sub = _get(ctx)
    if sub["status"] in ENDED:
        raise StripeError("A %s subscription can no longer be updated." % sub["status"])
    if sub["status"] == "incomplete":
        for key in p.data:
            if key not in INCOMPLETE_UPDATES:
                raise invalid("This subscription is incomplete: until its first invoice is "
                              "paid only its payment method, payment settings, description, "
                              "cancellation details and metadata can be updated.", key)
    customer = emu.store.find(sub["customer"])
    _collection(p)
    if p.has("payment_behavior"):
        _behavior(p)
    proration = p.str("proration_behavior", "create_prorations",
                      choices=("always_invoice", "create_prorations", "none"))
    before = emu.render(sub)
    previous = {}
    if p.has("items") and _update_items(ctx, sub, p.list("items"), proration):
        previous["items"] = before["items"]
    if p.has("default_payment_method"):
        value = p.str("default_payment_method")
        pm_id = _default_pm(ctx, customer, value)["id"] if value else None
        if pm_id != sub["default_payment_method"]:
            previous["default_payment_method"] = sub["default_payment_method"]
            sub["default_payment_method"] = pm_id
    if p.has("transfer_data") or p.has("application_fee_percent"):
        td = _transfer_data(ctx, p) if p.has("transfer_data") else sub["transfer_data"]
        percent = _percent(p, "application_fee_percent") \
            if p.has("application_fee_percent") else sub["application_fee_percent"]
        _fee_rules(ctx, percent, td)
        if td != sub["transfer_data"]:
            previous["transfer_data"] = sub["transfer_data"]
            sub["transfer_data"] = td
        if percent != sub["application_fee_percent"]:
            previous["application_fee_percent"] = sub["application_fee_percent"]
            sub["application_fee_percent"] = percent
    if p.has("payment_settings"):
        settings = _payment_settings(p, sub["payment_settings"])
        if settings != sub["payment_settings"]:
            previous["payment_settings"] = dict(sub["payment_settings"])
            sub["payment_settings"] = settings
    if p.has("description") and (p.str("description") or None) != sub["description"]:
        previous["description"] = sub["description"]
        sub["description"] = p.str("description") or None
    details = dict(sub["cancellation_details"])
    if p.has("cancellation_details"):
        cd = supported(p.sub("cancellation_details"), "cancellation_details", "comment",
                       "feedback")
        for key in ("comment", "feedback"):
            if cd.has(key):
                details[key] = cd.str(key) or None
    if p.has("cancel_at_period_end"):
        at_end = p.bool("cancel_at_period_end")
        if at_end != sub["cancel_at_period_end"]:
            for key in ("cancel_at_period_end", "cancel_at", "canceled_at"):
                previous[key] = sub[key]
            sub.update(cancel_at_period_end=at_end,
                       cancel_at=sub["_period"][1] if at_end else None,
                       canceled_at=emu.now() if at_end else None)
            details["reason"] = "cancellation_requested" if at_end else None
    if details != sub["cancellation_details"]:
        previous["cancellation_details"] = sub["cancellation_details"]
        sub["cancellation_details"] = details
    before_meta = apply_metadata(sub, p)
    if before_meta is not None:
        previous["metadata"] = before_meta
    if previous:
        emu.emit("customer.subscription.updated", sub, account=ctx.account,
                 previous=previous)
    return show(ctx, sub)


def end(emu, sub, reason, canceled_at=None):
    """The subscription is canceled now: `customer.subscription.deleted`. As Stripe does by
    default, automatic collection stops on every open invoice of the customer (its other
    subscriptions' too): they stay open, and are no longer retried."""
    now = emu.now()
    sub.update(status="canceled", ended_at=now,
               canceled_at=canceled_at or sub["canceled_at"] or now)
    for (kind, _), invoices in list(emu.store.lists.items()):
        if kind != "invoice":
            continue
        for inv in invoices:
            if inv["customer"] == sub["customer"] and inv["status"] == "open" and inv["auto_advance"]:
                inv.update(auto_advance=False, next_payment_attempt=None)
    sub["cancellation_details"] = dict(sub["cancellation_details"], reason=reason)
    emu.emit("customer.subscription.deleted", sub, account=sub["_account"])


@route("DELETE", "/v1/subscriptions/<sid>")
def cancel_subscription(ctx):
    """DELETE /v1/subscriptions/{id}: canceled now (no proration, no final invoice)."""
    p = ctx.params.check("cancellation_details", "invoice_now", "prorate")
    for key in ("invoice_now", "prorate"):
        if p.bool(key, False):
            raise unsupported(key)
    sub = _get(ctx)
    if sub["status"] in ENDED:
        raise StripeError("This subscription is already %s and cannot be canceled."
                          % sub["status"])
    if p.has("cancellation_details"):
        cd = supported(p.sub("cancellation_details"), "cancellation_details", "comment",
                       "feedback")
        details = dict(sub["cancellation_details"])
        for key in ("comment", "feedback"):
            if cd.has(key):
                details[key] = cd.str(key) or None
        sub["cancellation_details"] = details
    end(ctx.emu, sub, "cancellation_requested", canceled_at=ctx.emu.now())
    return show(ctx, sub)


# subscription items --------------------------------------------------------------------

def _item(ctx):
    item = ctx.emu.store.find(ctx.args["siid"])
    if item is None or item["_kind"] != "subscription_item" or \
            item["_account"] != ctx.account or item.get("deleted"):
        raise not_found("subscription_item", ctx.args["siid"])
    return item


@route("GET", "/v1/subscription_items/<siid>")
def retrieve_subscription_item(ctx):
    """GET /v1/subscription_items/{id}."""
    return show(ctx, _item(ctx))


@route("GET", "/v1/subscription_items")
def list_subscription_items(ctx):
    """GET /v1/subscription_items?subscription= (in the subscription's order)."""
    p = ctx.params.check("subscription", "limit", "starting_after", "ending_before")
    emu = ctx.emu
    sid = p.str("subscription", required=True)
    sub = emu.store.find(sid)
    if sub is None or sub["_kind"] != "subscription" or sub["_account"] != ctx.account:
        raise StripeError("No such subscription: '%s'" % sid, code="resource_missing",
                          param="subscription")
    items = [emu.store.find(i) for i in reversed(sub["_items"])]
    return paginate(items, p, "/v1/subscription_items", emu.render)


# rendering -----------------------------------------------------------------------------

def plan_of(price):
    """The Plan a Price stands for (subscription items still show one)."""
    rec = price["recurring"] or {}
    return complete({
        "id": price["id"], "object": "plan", "active": price["active"],
        "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"], "created": price["created"],
        "currency": price["currency"], "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"), "livemode": False,
        "metadata": dict(price["metadata"]), "meter": None, "nickname": price["nickname"],
        "product": price["product"], "tiers_mode": None, "transform_usage": None,
        "trial_period_days": None, "usage_type": rec.get("usage_type", "licensed")}, "plan")


def render_subscription(emu, obj, out):
    """The subscription's `items` list."""
    items = [emu.render(emu.store.find(i)) for i in obj["_items"]]
    out["items"] = {"object": "list", "data": items, "has_more": False,
                    "total_count": len(items),
                    "url": "/v1/subscription_items?subscription=%s" % obj["id"]}


def render_item(emu, obj, out):
    """A subscription item's Price and Plan."""
    price = emu.store.find(obj["price"])
    out["price"] = emu.render(price)
    out["plan"] = plan_of(price)
    out.pop("deleted", None)


# what invoices do to their subscription (called from invoices) -------------------------

def _open_invoices(emu, sub, but=None):
    return [i for i in emu.store.all("invoice", sub["_account"])
            if i["_subscription"] == sub["id"] and i["status"] == "open"
            and i["amount_remaining"] > 0 and i is not but]


def invoice_paid(emu, inv, pi, voided=False):
    """An invoice of the subscription was paid (or `voided`): `active` when it is the
    latest invoice or none is left unpaid (an incomplete one only by paying its first
    invoice); with
    `save_default_payment_method=on_subscription` the first payment's PaymentMethod becomes
    the subscription's default."""
    sub = emu.store.find(inv["_subscription"])
    if sub is None or sub["status"] in ENDED or (voided and sub["status"] == "incomplete"):
        return
    previous = {}
    if pi is not None and inv["billing_reason"] == "subscription_create" and \
            sub["payment_settings"]["save_default_payment_method"] == "on_subscription":
        pm = emu.store.find(pi["payment_method"] or "")
        if pm is not None and pm["customer"] == sub["customer"] and \
                pm["id"] != sub["default_payment_method"]:
            previous["default_payment_method"] = sub["default_payment_method"]
            sub["default_payment_method"] = pm["id"]
    if sub["status"] in ("incomplete", "past_due", "unpaid") and (
            inv["id"] == sub["latest_invoice"] or not _open_invoices(emu, sub, but=inv)):
        previous["status"] = sub["status"]
        sub["status"] = "active"
    if previous:
        emu.emit("customer.subscription.updated", sub, account=sub["_account"],
                 previous=previous)


def invoice_unpaid(emu, inv, exhausted):
    """An attempt to pay an invoice of the subscription failed (or waits for the customer):
    its latest renewal makes it `past_due`; after the last retry of its latest invoice it is
    canceled, or `unpaid`, or left `past_due` (the `billing` control)."""
    sub = emu.store.find(inv["_subscription"])
    if sub is None or sub["status"] in ENDED:
        return
    if inv["billing_reason"] != "subscription_create" and sub["status"] == "active" and \
            sub["latest_invoice"] == inv["id"]:
        sub["status"] = "past_due"
        emu.emit("customer.subscription.updated", sub, account=sub["_account"],
                 previous={"status": "active"})
    if not exhausted or sub["latest_invoice"] != inv["id"]:
        return
    action = billing_settings(emu)["after_retries"]
    if action == "cancel":
        end(emu, sub, "payment_failed", canceled_at=emu.now())
    elif action == "unpaid" and sub["status"] != "unpaid":
        previous = {"status": sub["status"]}
        sub["status"] = "unpaid"
        emu.emit("customer.subscription.updated", sub, account=sub["_account"],
                 previous=previous)


def customer_deleted(emu, customer):
    """Deleting a customer cancels its subscriptions at once."""
    for sub in emu.store.all("subscription", customer["_account"]):
        if sub["customer"] == customer["id"] and sub["status"] not in ENDED:
            end(emu, sub, "cancellation_requested", canceled_at=emu.now())


# the clock -----------------------------------------------------------------------------

def _renew(emu, sub):
    """The period ended: the next one starts, billed by a `subscription_cycle` invoice."""
    interval, count = sub["_interval"]
    old_start, old_end = sub["_period"]
    index = sub["_period_index"] + 1
    new_end = add_periods(sub["billing_cycle_anchor"], interval, count, index + 1)
    previous = {"items": emu.render(sub)["items"], "latest_invoice": sub["latest_invoice"]}
    sub.update(_period=[old_end, new_end], _period_index=index)
    for iid in sub["_items"]:
        emu.store.find(iid).update(current_period_start=old_end, current_period_end=new_end)
    inv = create_invoice(emu, sub, "subscription_cycle", old_start, old_end, announce=False)
    sub["latest_invoice"] = inv["id"]
    emu.emit("invoice.created", inv, account=sub["_account"])
    emu.emit("customer.subscription.updated", sub, account=sub["_account"],
             previous=previous)


def _expire(emu, sub):
    """The first invoice was not paid within 23 hours: voided, `incomplete_expired`."""
    from .invoices import void
    inv = emu.store.find(sub["latest_invoice"] or "")
    if inv is not None and inv["status"] == "open":
        void(emu, inv)
    now = emu.now()
    sub.update(status="incomplete_expired", canceled_at=now, ended_at=now)
    emu.emit("customer.subscription.updated", sub, account=sub["_account"],
             previous={"status": "incomplete"})


def due_work(emu):
    """(due time, order, object, what) of every step of billing the clock can make due."""
    for (kind, _), items in list(emu.store.lists.items()):
        if kind == "subscription":
            for sub in items:
                if sub["status"] == "incomplete":
                    yield sub["created"] + EXPIRES_AFTER, 0, sub, "expire"
                elif sub["status"] in LIVE:
                    yield sub["_period"][1], 1, sub, "period_end"
        elif kind == "invoice":
            for inv in items:
                if not inv["auto_advance"]:
                    continue
                if inv["status"] == "draft" and inv["automatically_finalizes_at"]:
                    yield inv["automatically_finalizes_at"], 2, inv, "finalize"
                elif inv["status"] == "open" and inv["next_payment_attempt"]:
                    yield inv["next_payment_attempt"], 3, inv, "retry"


def next_due(emu):
    """The earliest billing step (due time, order, object, what), or None."""
    return min(due_work(emu), key=lambda w: (w[0], w[1], w[2]["_seq"]), default=None)


def run(ctx, work):
    """Carry out one billing step that is due (the clock is at its time)."""
    emu = ctx.emu
    _, _, obj, what = work
    if what == "expire":
        _expire(emu, obj)
    elif what == "period_end":
        if obj["cancel_at_period_end"]:
            end(emu, obj, "cancellation_requested")
        else:
            _renew(emu, obj)
    else:
        sub = emu.store.find(obj["_subscription"])
        try:
            if what == "finalize":
                finalize(emu, obj)
                if obj["status"] == "open" and sub["status"] == "unpaid":
                    obj["auto_advance"] = False  # unpaid: invoices are made, not attempted
                elif obj["status"] == "open":
                    collect(ctx, obj, off_session=True, automatic=True)
            else:
                collect(ctx, obj, off_session=True, automatic=True)
        except StripeError:
            pass  # the attempt's failure is on the invoice, its PaymentIntent and events
        if obj["status"] == "open" and obj["next_payment_attempt"] is not None and \
                obj["next_payment_attempt"] <= emu.now():
            obj["next_payment_attempt"] = None  # never the same attempt twice


def advance(ctx, seconds):
    """Move the clock `seconds` on, carrying out each billing step at the time it is due,
    in order (a charge made on the way settles before the clock moves past it)."""
    emu = ctx.emu
    moved = 0
    emu.billing_stepping = True
    try:
        with emu.clock.held():  # each step at its due time, however long the steps before took
            for _ in range(100000):
                work = next_due(emu)
                if work is None or work[0] - emu.now() > seconds - moved:
                    break
                step = work[0] - emu.now()
                if step > 0:
                    emu.clock.advance(step)
                    moved += step
                run(ctx, work)
    finally:
        emu.billing_stepping = False
    if seconds - moved > 0:
        emu.clock.advance(seconds - moved)
    return emu.now()
