"""Vendors' recurring products sold by subscription, billed by Stripe, split like any order.

A recurring product has a Stripe Product and, for its current terms (price, currency,
interval), a Stripe Price; new terms make a new Price, and subscriptions keep theirs. A
shopper subscribes with a saved card (or a one-off one, saved first: Stripe charges renewals
off-session): a Subscription on the platform whose invoices are destination charges to the
vendor (`transfer_data.destination`), the platform's fee `application_fee_percent` of the
vendor's fee policy at subscription time.

Every paid invoice becomes an order of its own (`Order.stripe_invoice_id`, made once) with
one split and its Payment, booked by the same success path as a confirmed PaymentIntent: the
charge, Stripe's fee, the transfer Stripe made and the application fee, from one read of the
invoice's PaymentIntent. So the invoice is in the vendor's sales, balance, payouts and
statements, in the revenue report and in reconciliation, and is refunded through the order's
refunds (the vendor's share reversed by the same planner).

The subscription's own state is Stripe's, read again at each event about it and moved
forward only (a canceled subscription stays canceled whatever arrives late).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from marketplace import audit, fraud, money, stripe_gateway, stripe_requests
from marketplace.auth.models import User
from marketplace.catalog.models import Product
from marketplace.database import utcnow
from marketplace.errors import AppError, Conflict, NotFound
from marketplace.extensions import db
from marketplace.orders.models import Order, OrderItem, OrderSplit
from marketplace.pagination import paginate
from marketplace.stripe_gateway import PaymentDeclined, StripeFailure
from marketplace.payments.models import Payment
from marketplace.subscriptions.models import Subscription
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor
from marketplace.vendors.service import fee_policy, vendor_for_user
from marketplace.wallets import service as wallets

log = logging.getLogger(__name__)

LIVE = ("creating", "incomplete", "active", "past_due", "unpaid")
# Stripe's states kept as they are (trialing and paused are not used here).
STRIPE_STATUSES = ("incomplete", "active", "past_due", "unpaid", "canceled", "incomplete_expired")
FINAL = ("canceled", "incomplete_expired")
# What an invoice's PaymentIntent needs read to be booked (payments.service.SUCCESS_EXPAND).
INVOICE_EXPAND = ["payments"]


# Stripe Product and Price ------------------------------------------------------------------

def terms(product: Product) -> str:
    """The terms a Price is made for: a new Price when any of them changes."""
    return f"{product.price}-{product.currency}-{product.recurring_interval}-{product.recurring_interval_count}"


def ensure_price(product_id: str) -> Product:
    """The product with a Stripe Price of its current terms (made now if it has none)."""
    product = db.session.get(Product, product_id)
    if product.stripe_price_id is not None and product.stripe_price_terms == terms(product):
        return product
    if product.stripe_product_id is None:
        key = f"product-{product.id}"
        params = stripe_requests.freeze(key, lambda: {
            "name": product.name[:250], "metadata": {"product_id": product.id, "vendor_id": product.vendor_id}})
        db.session.commit()
        made = stripe_requests.send(stripe_gateway.create_product, params, key)
        product = db.session.get(Product, product_id)
        product.stripe_product_id = made["id"]
        db.session.commit()
    now_terms = terms(product)
    price = stripe_gateway.create_price({
        "product": product.stripe_product_id, "currency": product.currency, "unit_amount": product.price,
        "recurring": {"interval": product.recurring_interval, "interval_count": product.recurring_interval_count},
        "metadata": {"product_id": product.id},
    }, f"price-{product.id}-{now_terms}")  # the same terms, the same Price
    product = db.session.get(Product, product_id)
    if terms(product) == now_terms:  # not changed meanwhile
        product.stripe_price_id, product.stripe_price_terms = price["id"], now_terms
        db.session.commit()
    return product


# Subscribing -------------------------------------------------------------------------------

def subscription_key(subscription: Subscription) -> str:
    return f"subscription-{subscription.id}"


def subscribe(user: User, product_id: str, payment_method: str | None = None) -> tuple[Subscription, dict | None]:
    """Subscribe the shopper to a recurring product: (subscription, next_action or None).

    Stripe charges the first invoice at once with the card (saved on the shopper's Customer
    first when it is a one-off one); one needing 3-D Secure leaves the subscription
    `incomplete` with the PaymentIntent's `next_action`. A paid first invoice is booked
    before answering. A retry of a subscription whose answer was lost (the same shopper and
    product, still `creating`) sends the same request again: one subscription."""
    fraud.check_failed_payments(user.id)
    product = db.session.get(Product, product_id)
    if product is None or not product.active or product.recurring_interval is None:
        raise NotFound("No such recurring product.", code="product_not_found")
    vendor = db.session.get(Vendor, product.vendor_id)
    if not vendor.can_sell:
        raise Conflict("The vendor of this product cannot sell now.", code="vendor_cannot_sell")
    _refuse_second(user, product.id)
    method, saved = wallets.payment_method_for(user, payment_method)
    if not saved:
        method = wallets.save(user, method)["id"]
    customer = wallets.ensure_customer(user)
    local_id = _claim(user, ensure_price(product_id), vendor, customer.stripe_customer_id, method)
    local = db.session.get(Subscription, local_id)
    key, stale = subscription_key(local), local.created_at < utcnow() - wallets.KEY_LIFETIME
    params = stripe_requests.frozen(key)
    db.session.rollback()
    # Past Stripe's 24 hours the key may be forgotten: one made then is looked for first.
    read_at = utcnow()
    made = _find_made(params["customer"], local_id) if stale else None
    if made is None:
        try:
            made = stripe_requests.send(stripe_gateway.create_subscription, params, key)
        except StripeFailure as refused:
            if refused.refused_parameters:  # never made: the row ends, the shopper may try again
                _end_unmade(local_id)
            raise
    _apply(made, read_at, local_id)
    invoice = made.get("latest_invoice") if isinstance(made.get("latest_invoice"), dict) else None
    next_action = None
    if invoice is not None and invoice.get("status") == "paid":
        try:
            book_invoice(invoice["id"])
        except AppError as unread:  # booked by its invoice.paid event (Stripe retries it for days)
            log.warning("subscription %s: invoice %s not booked now (%s); its event books it",
                        local_id, invoice["id"], unread.code)
    elif made["status"] == "incomplete" and invoice is not None:
        intent = _intent_of(invoice["id"])
        if intent is not None and intent["status"] == "requires_payment_method":  # declined
            _give_up(user, local_id, made["id"])
        next_action = intent.get("next_action") if intent is not None else None
    subscription = db.session.get(Subscription, local_id)
    audit.record("subscription.created", "subscription", subscription.id, amount=subscription.price,
                 currency=subscription.currency)
    db.session.commit()
    return subscription, next_action


def _refuse_second(user: User, product_id: str, lock: bool = False) -> Subscription | None:
    """The shopper's subscription being made to the product, if any; a live one: 409."""
    stmt = select(Subscription).where(Subscription.shopper_id == user.id, Subscription.product_id == product_id,
                                      Subscription.status.in_(LIVE))
    existing = db.session.scalar(stmt.with_for_update() if lock else stmt)
    if existing is not None and existing.status != "creating":
        raise Conflict("You are subscribed to this product already.", code="already_subscribed",
                       details={"subscription_id": existing.id})
    return existing


@atomic
def _claim(user: User, product: Product, vendor: Vendor, customer_id: str, payment_method: str) -> str:
    """The shopper's `creating` subscription to the product (a retry's), or a new one, its
    Stripe request frozen with it; a live one already: 409."""
    local = _refuse_second(user, product.id, lock=True)
    if local is None:
        policy = fee_policy(vendor)
        local = Subscription(
            shopper_id=user.id, vendor_id=vendor.id, product_id=product.id, stripe_price_id=product.stripe_price_id,
            price=product.price, currency=product.currency, interval=product.recurring_interval,
            interval_count=product.recurring_interval_count, fee_percent_bps=policy.percent_bps,
            fee_fixed=policy.fixed, status="creating")
        db.session.add(local)
        try:
            db.session.flush()
        except IntegrityError:  # a concurrent request made the shopper's subscription first
            raise Conflict("You are subscribed to this product already.", code="already_subscribed") from None
    # A retry's request is the one first sent (unless Stripe refused its parameters).
    stripe_requests.freeze(subscription_key(local), lambda: {
        "customer": customer_id, "items": [{"price": local.stripe_price_id}],
        "default_payment_method": payment_method, "payment_behavior": "allow_incomplete",
        "transfer_data": {"destination": vendor.stripe_account_id},
        # Stripe takes a percent with at most two decimals: basis points / 100 is exact.
        "application_fee_percent": local.fee_percent_bps / 100,
        "metadata": {"subscription_id": local.id, "product_id": product.id, "vendor_id": vendor.id},
        "expand": ["latest_invoice"],
    })
    return local.id


def _find_made(customer_id: str, local_id: str) -> dict | None:
    """The Customer's Subscription made for this local one (named in its metadata), if any."""
    for found in stripe_gateway.list_subscriptions(customer_id):
        if (found.get("metadata") or {}).get("subscription_id") == local_id:
            return stripe_gateway.retrieve_subscription(found["id"], expand=["latest_invoice"])
    return None


@atomic
def _end_unmade(local_id: str) -> None:
    local = db.session.scalar(select(Subscription).where(Subscription.id == local_id).with_for_update())
    if local.status == "creating" and local.stripe_subscription_id is None:
        local.status, local.canceled_at = "incomplete_expired", utcnow()


def _intent_of(invoice_id: str) -> dict | None:
    """The PaymentIntent of an unpaid first invoice (its status, its `next_action`)."""
    invoice = stripe_gateway.retrieve_invoice(invoice_id, expand=["payments.data.payment.payment_intent"])
    for entry in (invoice.get("payments") or {}).get("data", []):
        intent = (entry.get("payment") or {}).get("payment_intent")
        if isinstance(intent, dict):
            return intent
    return None


def _give_up(user: User, local_id: str, stripe_subscription_id: str) -> None:
    """The first payment was declined: the subscription is canceled at Stripe (nothing was
    charged) and the shopper told 402, free to subscribe again with another card."""
    fraud.record_failed_payment(user.id)
    read_at = utcnow()
    _apply(stripe_gateway.cancel_subscription(stripe_subscription_id), read_at, local_id)
    raise PaymentDeclined(details={"decline_code": "generic_decline"})


@atomic
def _apply(stripe_subscription: dict, read_at: datetime, local_id: str | None = None) -> Subscription | None:
    """Bring the local subscription in line with Stripe's, as read by a request sent at
    `read_at` (taken before it was sent): never over what a request sent later showed (two
    events' reads under way at once may come back in either order; the one sent last, after
    the last change, is what stays). Final statuses are never left."""
    local = _locked(stripe_subscription, local_id)
    if local is None:
        return None
    local.stripe_subscription_id = stripe_subscription["id"]
    if local.stripe_read_at is not None and read_at < local.stripe_read_at:
        return local  # an older read than the one applied
    local.stripe_read_at = read_at
    status = stripe_subscription["status"]
    if local.status not in FINAL and status in STRIPE_STATUSES:
        local.status = status
    items = (stripe_subscription.get("items") or {}).get("data") or []
    if items and items[0].get("current_period_end"):
        local.current_period_end = datetime.fromtimestamp(items[0]["current_period_end"], timezone.utc)
    local.cancel_at_period_end = bool(stripe_subscription.get("cancel_at_period_end"))
    if stripe_subscription.get("canceled_at") and local.canceled_at is None and local.status == "canceled":
        local.canceled_at = datetime.fromtimestamp(stripe_subscription["canceled_at"], timezone.utc)
    invoice = stripe_subscription.get("latest_invoice")
    if isinstance(invoice, dict):
        _note_invoice(local, invoice)
    elif isinstance(invoice, str) and invoice != local.latest_invoice_id:
        local.latest_invoice_id, local.latest_invoice_status, local.latest_invoice_amount_paid = invoice, None, None
    return local


def _note_invoice(local: Subscription, invoice: dict, latest: bool = True) -> None:
    """Show the invoice as the subscription's latest (`latest`: Stripe says it is; else only
    when it is the one already shown, now read again)."""
    if latest or local.latest_invoice_id in (None, invoice["id"]):
        local.latest_invoice_id = invoice["id"]
        local.latest_invoice_status = invoice.get("status")
        local.latest_invoice_amount_paid = invoice.get("amount_paid")


def _locked(stripe_subscription: dict, local_id: str | None) -> Subscription | None:
    if local_id is None:
        local_id = db.session.scalar(select(Subscription.id).where(
            Subscription.stripe_subscription_id == stripe_subscription["id"]))
        if local_id is None:  # made by us, its answer lost: named in its metadata
            local_id = (stripe_subscription.get("metadata") or {}).get("subscription_id")
    if local_id is None:
        return None
    local = db.session.scalar(select(Subscription).where(Subscription.id == local_id).with_for_update())
    if local is not None and local.stripe_subscription_id not in (None, stripe_subscription["id"]):
        log.error("Stripe subscription %s names %s, which is %s: not applied", stripe_subscription["id"],
                  local_id, local.stripe_subscription_id)
        return None
    return local


# Invoices ----------------------------------------------------------------------------------

def book_invoice(invoice_id: str) -> Order | None:
    """A paid invoice of one of our subscriptions as an order, booked as a destination charge
    (once, whichever event or answer comes first); None for anyone else's invoice."""
    invoice = stripe_gateway.retrieve_invoice(invoice_id, expand=INVOICE_EXPAND)
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    local_id = _local_of(details.get("subscription"), details.get("metadata"))
    if local_id is None or invoice.get("status") != "paid":
        return None
    intent_id = next((entry["payment"].get("payment_intent") for entry in (invoice.get("payments") or {}).get("data", [])
                      if entry.get("status") == "paid" and (entry.get("payment") or {}).get("payment_intent")), None)
    if intent_id is None:
        log.warning("invoice %s is paid with no PaymentIntent: not booked", invoice_id)
        return None
    from marketplace.payments.service import SUCCESS_EXPAND, apply_succeeded

    intent = stripe_gateway.retrieve_payment_intent(intent_id, expand=SUCCESS_EXPAND)
    order_id = _invoice_order(local_id, invoice, intent, details.get("subscription"))
    apply_succeeded(intent)
    return db.session.get(Order, order_id)


def _local_of(stripe_subscription_id: str | None, metadata: dict | None) -> str | None:
    """Our subscription of a Stripe one: by its id, or (its creation's answer not recorded
    yet, or lost) by the local id its metadata names."""
    local_id = db.session.scalar(select(Subscription.id).where(
        Subscription.stripe_subscription_id == stripe_subscription_id)) if stripe_subscription_id else None
    named = (metadata or {}).get("subscription_id")
    if local_id is None and named:
        local_id = db.session.scalar(select(Subscription.id).where(
            Subscription.id == named, Subscription.stripe_subscription_id.is_(None)))
    db.session.rollback()
    return local_id


@atomic
def _invoice_order(local_id: str, invoice: dict, intent: dict, stripe_subscription_id: str | None) -> str:
    """The invoice's order and Payment, made once (the subscription row locked meanwhile)."""
    local = db.session.scalar(select(Subscription).where(Subscription.id == local_id).with_for_update())
    if local.stripe_subscription_id is None and stripe_subscription_id:  # its creation's answer not in yet
        local.stripe_subscription_id = stripe_subscription_id
    existing = db.session.scalar(select(Order.id).where(Order.stripe_invoice_id == invoice["id"]))
    _note_invoice(local, invoice, latest=False)
    if existing is not None:
        return existing
    amount = intent["amount"]
    # A destination charge, as the subscription is made; while the vendor is suspended its
    # renewals are charged to the platform alone (follow_vendor) and its share is held there,
    # as for any separate charge, until it is reinstated.
    # The fee is the policy's. On a destination charge Stripe's application fee takes it,
    # but not all of it on a first invoice, finalized before a fixed part could be set (the
    # percent only), nor on a renewal whose terms changed under it: what it left out is
    # collected from the vendor's transfer (transfers.plan_transfers). More is never given back.
    destination = bool(intent.get("transfer_data"))
    taken = intent.get("application_fee_amount") or 0
    fee = money.platform_fee(amount, local.fee_percent_bps, local.fee_fixed)
    if destination:
        fee = max(fee, min(taken, amount))
    product = db.session.get(Product, local.product_id)
    order = Order(
        shopper_id=local.shopper_id, status="processing", currency=intent["currency"], subtotal=amount, total=amount,
        platform_fee=fee, charge_type="destination" if destination else "separate_transfers",
        payment_intent_id=intent["id"],
        stock_released_at=utcnow(),  # no stock was reserved: none goes back
        subscription_id=local.id, stripe_invoice_id=invoice["id"])
    percent_part = money.platform_fee(amount, local.fee_percent_bps, 0)
    split = OrderSplit(vendor_id=local.vendor_id, position=0, currency=order.currency, subtotal=amount,
                       percent_bps=local.fee_percent_bps, fixed=max(fee - percent_part, 0), platform_fee=fee,
                       vendor_net=amount - fee, refunded=0, status="pending")
    order.splits.append(split)
    order.items.append(OrderItem(split=split, product_id=local.product_id, vendor_id=local.vendor_id, position=0,
                                 name=product.name, unit_price=amount, quantity=1, amount=amount))
    db.session.add(order)
    db.session.flush()
    payment = Payment(order_id=order.id, shopper_id=local.shopper_id, payment_intent_id=intent["id"], client_secret="",
                      charge_type=order.charge_type, amount=amount, currency=order.currency,
                      application_fee_amount=taken if destination else None,
                      status="processing", stripe_customer_id=intent.get("customer"))
    db.session.add(payment)
    db.session.flush()
    audit.record("subscription.invoice_paid", "order", order.id, amount=amount, currency=order.currency)
    return order.id


# Events ------------------------------------------------------------------------------------

def handle_invoice_paid(invoice: dict) -> Order | None:
    """`invoice.paid`: the invoice is booked as an order (once)."""
    return book_invoice(invoice["id"])


def handle_invoice_created(invoice: dict) -> Subscription | None:
    """`invoice.created`: a renewal's draft, made by Stripe with the subscription's terms as
    they stood, gets the terms the vendor's standing asks for now. The vendor suspended (the
    job following it may not have run): the subscription and its drafts are charged to the
    platform alone. Else, when the fee policy has a fixed part, the draft is a destination
    charge with the whole fee as its application fee (percent of its total, rounded half up,
    plus the fixed part, as for an order's split). None when there is nothing to do."""
    subscription_id = (((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription"))
    local = db.session.scalar(select(Subscription).where(
        Subscription.stripe_subscription_id == subscription_id)) if subscription_id else None
    if local is None:
        db.session.rollback()
        return None
    terms = _terms(db.session.get(Vendor, local.vendor_id), local.fee_percent_bps, local.fee_fixed)
    db.session.rollback()
    if terms.suspended:
        _follow(subscription_id, terms)
        return local
    if terms.fixed == 0:
        return None  # the subscription's own terms are the draft's
    current = stripe_gateway.retrieve_invoice(invoice["id"])
    if current["status"] != "draft" or not current.get("total"):
        return None  # the first invoice (finalized at once: see plan_transfers), or too late
    _set_draft_terms(current, terms)
    return local


@dataclass(frozen=True)
class _Terms:
    """What a subscription's invoices should be: the vendor's standing and the fee policy.
    `standing` names the vendor's current standing in the idempotency keys of the changes."""

    suspended: bool
    account: str
    percent_bps: int
    fixed: int
    standing: str


def _terms(vendor: Vendor, percent_bps: int, fixed: int) -> _Terms:
    changed = vendor.updated_at or vendor.created_at
    standing = f"{'held' if vendor.suspended else 'destination'}-{int(changed.timestamp() * 1000)}"
    return _Terms(vendor.suspended, vendor.stripe_account_id, percent_bps, fixed, standing)


def _follow(stripe_id: str, terms: _Terms) -> None:
    """The subscription's terms, and its drafts' (Stripe made them with the terms it had),
    as the vendor's standing asks."""
    changes = ({"transfer_data": "", "application_fee_percent": ""} if terms.suspended else
               {"transfer_data": {"destination": terms.account}, "application_fee_percent": terms.percent_bps / 100})
    read_at = utcnow()
    _apply(stripe_gateway.update_subscription(stripe_id, changes), read_at)
    for draft in stripe_gateway.list_draft_invoices(stripe_id):
        if draft.get("total"):
            _set_draft_terms(draft, terms)


def _set_draft_terms(draft: dict, terms: _Terms) -> None:
    """A draft invoice charged to the platform alone (its vendor suspended), or as a
    destination charge with the policy's whole fee. An application fee set on a draft
    cannot be unset: Stripe refuses to drop the destination of one made before the
    suspension, which then stays a destination charge (its share reaches the vendor's
    account, which no payout run pays out while it is suspended)."""
    key = f"invoice-terms-{draft['id']}-{terms.standing}-{draft['total']}"
    if not terms.suspended:
        fee = money.platform_fee(draft["total"], terms.percent_bps, terms.fixed)
        stripe_gateway.update_invoice(draft["id"], {"transfer_data": {"destination": terms.account},
                                                    "application_fee_amount": fee}, key)
        return
    try:
        stripe_gateway.update_invoice(draft["id"], {"transfer_data": ""}, key)
    except StripeFailure as refused:
        log.warning("draft invoice %s keeps its destination (%s): its application fee was set before the "
                    "vendor was suspended", draft["id"], refused.code)


def handle_subscription_changed(stripe_subscription: dict) -> Subscription | None:
    """`customer.subscription.*`, `invoice.payment_failed`, `invoice.payment_action_required`:
    the subscription read again from Stripe and moved forward; None for anyone else's."""
    subscription_id, metadata = stripe_subscription.get("id"), stripe_subscription.get("metadata")
    if stripe_subscription.get("object") == "invoice":
        details = (stripe_subscription.get("parent") or {}).get("subscription_details") or {}
        subscription_id, metadata = details.get("subscription"), details.get("metadata")
    local_id = _local_of(subscription_id, metadata) if subscription_id else None
    if local_id is None:
        return None
    read_at = utcnow()
    current = stripe_gateway.retrieve_subscription(subscription_id, expand=["latest_invoice"])
    applied = _apply(current, read_at, local_id)
    if current["status"] == "canceled":
        _collect_the_others(current)
    return applied


def _collect_the_others(ended: dict) -> int:
    """Stripe stops collecting every open invoice of the customer when one subscription ends:
    those of the shopper's other live subscriptions are collected again; returns how many."""
    live = set(db.session.scalars(select(Subscription.stripe_subscription_id).where(
        Subscription.status.in_(LIVE), Subscription.stripe_subscription_id.is_not(None),
        Subscription.stripe_subscription_id != ended["id"])))
    db.session.rollback()
    if not live:
        return 0
    resumed = 0
    for invoice in stripe_gateway.list_open_invoices(ended["customer"]):
        owner = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        if owner in live and not invoice.get("auto_advance"):
            stripe_gateway.update_invoice(invoice["id"], {"auto_advance": True},
                                          f"invoice-collect-{invoice['id']}-{ended['id']}")
            resumed += 1
    return resumed


# A vendor suspended or reinstated ----------------------------------------------------------

def follow_vendor(vendor_id: str) -> int:
    """While a vendor is suspended its subscriptions charge the platform alone (no
    `transfer_data`, no application fee): each renewal's share is held for the vendor, as a
    separate charge's is, and paid out when it is reinstated, when they go back to destination
    charges with the fee of their policy. Their renewals' drafts are changed too (Stripe made
    them with the terms of then). Returns how many subscriptions were changed."""
    vendor = db.session.get(Vendor, vendor_id)
    rows = db.session.execute(select(Subscription.stripe_subscription_id, Subscription.fee_percent_bps,
                                     Subscription.fee_fixed).where(
        Subscription.vendor_id == vendor_id, Subscription.status.in_(LIVE),
        Subscription.stripe_subscription_id.is_not(None))).all()
    followed = [(stripe_id, _terms(vendor, bps, fixed)) for stripe_id, bps, fixed in rows]
    db.session.rollback()
    for stripe_id, terms in followed:
        _follow(stripe_id, terms)
    return len(rows)


# The worker's sweep ------------------------------------------------------------------------

# A subscription still `creating` this long after its row was made is looked for at Stripe.
CREATING_GRACE = timedelta(minutes=10)


def sweep(limit: int = 200) -> int:
    """The net under lost answers and missed events: subscriptions still `creating` are looked
    for at Stripe (by the local id in their metadata) and adopted, or ended once Stripe has
    forgotten their key with none made; a latest invoice shown paid with no order is booked.
    Returns how many were brought in line."""
    now = utcnow()
    creating = db.session.scalars(select(Subscription.id).where(
        Subscription.status == "creating", Subscription.created_at < now - CREATING_GRACE)
        .order_by(Subscription.created_at).limit(limit)).all()
    unbooked = db.session.scalars(select(Subscription.latest_invoice_id).where(
        Subscription.latest_invoice_status == "paid",
        ~select(Order.id).where(Order.stripe_invoice_id == Subscription.latest_invoice_id).exists())
        .limit(limit)).all()
    db.session.rollback()
    done = 0
    for local_id in creating:
        local = db.session.get(Subscription, local_id)
        params, stale = stripe_requests.frozen(subscription_key(local)), local.created_at < now - wallets.KEY_LIFETIME
        db.session.rollback()
        read_at = utcnow()
        made = _find_made(params["customer"], local_id) if params else None
        if made is not None:
            _apply(made, read_at, local_id)
            invoice = made.get("latest_invoice")
            if isinstance(invoice, dict) and invoice.get("status") == "paid":
                book_invoice(invoice["id"])
            done += 1
        elif stale:  # never made, and no retry can make it under its key any more
            _end_unmade(local_id)
            done += 1
    for invoice_id in unbooked:
        done += book_invoice(invoice_id) is not None
    return done


# Canceling, reading ------------------------------------------------------------------------

def cancel(user: User, subscription_id: str, at_period_end: bool) -> Subscription:
    """End the subscription at its period's end, or now; by its shopper or an admin."""
    local = get(user, subscription_id)
    if local.status in FINAL:
        raise Conflict("This subscription has ended.", code="subscription_ended")
    if local.stripe_subscription_id is None:
        raise Conflict("This subscription is still being made; try again.", code="subscription_in_progress",
                       headers={"Retry-After": "2"})
    stripe_id = local.stripe_subscription_id
    db.session.rollback()
    read_at = utcnow()
    try:
        if at_period_end:
            changed = stripe_gateway.update_subscription(stripe_id, {"cancel_at_period_end": True})
        else:
            changed = stripe_gateway.cancel_subscription(stripe_id)
    except StripeFailure:  # refused: ended at Stripe already (its event not in yet)? Go by Stripe
        read_at = utcnow()
        changed = stripe_gateway.retrieve_subscription(stripe_id, expand=["latest_invoice"])
        if changed["status"] not in ("canceled", "incomplete_expired"):
            raise
    _apply(changed, read_at)
    if changed["status"] == "canceled":
        _collect_the_others(changed)
    audit.record("subscription.canceled" if not at_period_end else "subscription.cancel_scheduled",
                 "subscription", subscription_id)
    db.session.commit()
    return db.session.get(Subscription, subscription_id)


def get(user: User, subscription_id: str) -> Subscription:
    """The subscription if the caller is its shopper or an admin; 404 otherwise."""
    local = db.session.get(Subscription, subscription_id)
    if local is None or (user.role != "admin" and local.shopper_id != user.id):
        raise NotFound("No such subscription.", code="subscription_not_found")
    return local


def list_for(user: User, page: int, per_page: int) -> dict:
    """The shopper's subscriptions (every one, for an admin), newest first."""
    stmt = select(Subscription)
    if user.role != "admin":
        stmt = stmt.where(Subscription.shopper_id == user.id)
    stmt = stmt.order_by(Subscription.created_at.desc(), Subscription.id.desc())
    return paginate(stmt, page, per_page).as_dict()


def monthly(amount: int, interval: str, interval_count: int) -> int:
    """A price's monthly amount: per month of its interval, rounded half up."""
    months = interval_count * (12 if interval == "year" else 1)
    return money.round_half_up_div(amount, months)


def for_vendor(user: User, page: int, per_page: int) -> dict:
    """The vendor's subscribers, newest first, with how many are active and the monthly
    recurring revenue of the active ones, per currency."""
    vendor = vendor_for_user(user)
    stmt = (select(Subscription).where(Subscription.vendor_id == vendor.id)
            .order_by(Subscription.created_at.desc(), Subscription.id.desc()))
    listed = paginate(stmt, page, per_page).as_dict()
    active = db.session.execute(select(Subscription.price, Subscription.currency, Subscription.interval,
                                       Subscription.interval_count)
                                .where(Subscription.vendor_id == vendor.id, Subscription.status == "active")).all()
    mrr: dict[str, int] = {}
    for price, currency, interval, count in active:
        mrr[currency] = mrr.get(currency, 0) + monthly(price, interval, count)
    listed["summary"] = {"active": len(active),
                         "mrr": [{"currency": c, "amount": a} for c, a in sorted(mrr.items())]}
    return listed


def invoice_order_of(subscription: Subscription) -> str | None:
    """The order of the subscription's latest invoice, when it was paid."""
    if subscription.latest_invoice_id is None:
        return None
    return db.session.scalar(select(Order.id).where(Order.stripe_invoice_id == subscription.latest_invoice_id))
