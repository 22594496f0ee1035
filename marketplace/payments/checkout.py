"""Stripe Checkout for an order: the hosted payment page, paying through the same success path.

An order is paid one way at a time. A Checkout Session is opened only for an order with no
PaymentIntent of the API's own, and while one is open, making a PaymentIntent, confirming,
canceling or expiring the order expires the session at Stripe first (`close_open`): if Stripe
says it completed meanwhile, the order is being paid and the other way is refused. The session
makes its own PaymentIntent when the shopper pays; `checkout.session.completed` (or the
PaymentIntent's `payment_intent.succeeded`, whichever is processed first) records it as the
order's Payment and books it through `service.apply_succeeded`, as a confirmation is booked:
the same transfers, fees and ledger entries, once.

The line items are the order's frozen lines, never the client's; the PaymentIntent carries the
same destination, application fee or transfer group as one made by the API. The session
expires before the order's payment window closes, so an order expired for non-payment never
has a session that could still take money.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import func, select

from marketplace import audit, fraud, stripe_gateway, stripe_requests
from marketplace.auth.models import User
from marketplace.database import utcnow
from marketplace.errors import Conflict, NotFound
from marketplace.extensions import db
from marketplace.orders.models import Order
from marketplace.payments.locking import lock_order
from marketplace.payments.models import CheckoutSession, Payment
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

PAYABLE = ("pending_payment", "payment_failed")
# Stripe's bounds on a session's expires_at, from its creation.
SHORTEST, LONGEST = timedelta(minutes=30), timedelta(hours=24)
# The session closes this long before the order's payment window does.
MARGIN = timedelta(minutes=5)


def session_key(order_id: str, attempt: int) -> str:
    """The idempotency key of the order's n-th Checkout Session."""
    return f"checkout-session-{order_id}-{attempt}"


def open_session(user: User, order_id: str) -> tuple[CheckoutSession, bool]:
    """The order's open Checkout Session, made now if it has none: (session, made now).

    The request's parameters (its `expires_at` among them) are fixed before it is first sent
    (`stripe_requests`), so a retry after a lost answer sends the same request under the same
    key and Stripe answers with the session it made. The order row stays locked over the one
    Stripe call, as for a PaymentIntent: concurrent callers wait, then find the session."""
    fraud.check_failed_payments(user.id)
    for _ in range(3):
        live, fresh = _prepare(user, order_id)
        if live is not None:
            return live, False
        try:
            made = _create(order_id)
        except stripe_gateway.StripeFailure as refused:
            # Refused for its parameters (forgotten then, under the order's lock): parameters
            # frozen by an earlier try may just be stale (an `expires_at` now too close), and
            # are asked again at once with new ones.
            if fresh or not refused.refused_parameters:
                raise
            continue
        if made is not None:
            return made, True
    raise Conflict("The order's hosted checkout could not be opened; try again.", code="checkout_session_unavailable",
                   headers={"Retry-After": "1"})


@atomic
def _prepare(user: User, order_id: str) -> tuple[CheckoutSession | None, bool]:
    """(the order's live session, None) or, with none, (None, whether the next attempt's
    parameters were fixed just now), the parameters committed before Stripe is asked."""
    order = _payable(order_id, user)
    live = open_session_of(order.id)
    if live is not None and live.expires_at > utcnow():
        return live, False
    from marketplace.payments.service import refuse_suspended_destination

    refuse_suspended_destination(order)
    if order.payment_summary is not None:
        raise Conflict("This order is being paid with its PaymentIntent; confirm that instead.",
                       code="payment_intent_exists")
    if live is not None:  # past its expiry: expired at Stripe for certain before another opens
        live.status = _expire_at_stripe(live.stripe_session_id)
    key = session_key(order.id, _attempt(order.id))
    fresh = stripe_requests.frozen(key) is None
    stripe_requests.freeze(key, lambda: _params(order, user, _expiry(order)))
    return None, fresh


@atomic
def _create(order_id: str) -> CheckoutSession | None:
    """Ask Stripe for the next attempt's session with its frozen parameters and record it;
    None when there is something to look at again: a session a concurrent caller opened, or
    Stripe's answer a session expired since."""
    order = _payable(order_id)
    if open_session_of(order.id) is not None or order.payment_summary is not None:
        return None  # a concurrent caller opened one (or made a PaymentIntent): look again
    attempt = _attempt(order.id)
    key = session_key(order.id, attempt)
    params = stripe_requests.frozen(key)
    if params is None:  # forgotten by a refused try meanwhile
        raise Conflict("The order's hosted checkout was being opened meanwhile; try again.",
                       code="checkout_session_open", headers={"Retry-After": "1"})
    made = stripe_requests.send(stripe_gateway.create_checkout_session, params, key)
    # A replayed answer is the session as Stripe made it, open then: past its expiry it is
    # expired now (a complete one is booked by its events).
    expired = made["status"] == "expired" or made["expires_at"] <= utcnow().timestamp()
    status = "expired" if expired else "open"
    session = CheckoutSession(order_id=order.id, attempt=attempt, stripe_session_id=made["id"], url=made["url"] or "",
                              expires_at=datetime.fromtimestamp(made["expires_at"], timezone.utc), status=status)
    db.session.add(session)
    db.session.flush()
    if status == "expired":
        return None
    audit.record("checkout_session.created", "order", order.id, amount=order.total, currency=order.currency)
    return session


def _payable(order_id: str, user: User | None = None) -> Order:
    """The order, locked, payable (and the user's, when one is given)."""
    order = lock_order(order_id)
    if order is None or (user is not None and order.shopper_id != user.id):
        raise NotFound("No such order.", code="order_not_found")
    if order.status not in PAYABLE:
        raise Conflict("This order cannot be paid.", code="order_not_payable", details={"status": order.status})
    return order


def _attempt(order_id: str) -> int:
    """How many sessions the order had: the next one's place in its idempotency key."""
    return db.session.scalar(select(func.count()).select_from(CheckoutSession)
                             .where(CheckoutSession.order_id == order_id))


def open_session_of(order_id: str) -> CheckoutSession | None:
    """The order's open Checkout Session, if it has one."""
    return db.session.scalar(select(CheckoutSession).where(
        CheckoutSession.order_id == order_id, CheckoutSession.status == "open"))


def _expiry(order: Order) -> datetime:
    """Before the order's payment window closes, within Stripe's 30 minutes to 24 hours."""
    now = utcnow()
    window = timedelta(hours=current_app.config["ORDER_PAYMENT_WINDOW_HOURS"])
    closes = min(order.created_at + window - MARGIN, now + LONGEST - timedelta(minutes=1))
    if closes < now + SHORTEST:
        raise Conflict("The order's payment window closes too soon for a hosted checkout; pay it directly.",
                       code="payment_window_closing")
    return closes


def _params(order: Order, user: User, expires_at: datetime) -> dict:
    from marketplace.wallets.service import customer_of

    config = current_app.config
    intent_data: dict = {"metadata": {"order_id": order.id}, "receipt_email": user.email}
    if order.charge_type == "destination":
        split = order.splits[0]
        vendor = db.session.get(Vendor, split.vendor_id)
        intent_data["transfer_data"] = {"destination": vendor.stripe_account_id}
        intent_data["application_fee_amount"] = split.platform_fee
    else:
        intent_data["transfer_group"] = f"order_{order.id}"
    params = {
        "mode": "payment", "line_items": _line_items(order), "client_reference_id": order.id,
        # Cards only: a card payment is paid when the session completes. A delayed method
        # (bank debits) would complete it unpaid and settle or fail days later.
        "allowed_payment_method_types": ["card"],
        "expires_at": int(expires_at.timestamp()), "metadata": {"order_id": order.id},
        "payment_intent_data": intent_data,
        "success_url": config["CHECKOUT_SUCCESS_URL"].replace("{ORDER_ID}", order.id),
        "cancel_url": config["CHECKOUT_CANCEL_URL"].replace("{ORDER_ID}", order.id),
    }
    customer = customer_of(user.id)
    if customer is not None:
        params["customer"] = customer.stripe_customer_id
    else:
        params["customer_email"] = user.email
    return params


def _line_items(order: Order) -> list[dict]:
    """The order's frozen lines; they add up to the order's total or nothing is sent."""
    items = []
    for item in sorted(order.items, key=lambda i: i.position):
        each, quantity = ((item.unit_price, item.quantity) if item.unit_price * item.quantity == item.amount
                          else (item.amount, 1))
        items.append({"quantity": quantity, "price_data": {
            "currency": order.currency, "unit_amount": each, "product_data": {"name": item.name}}})
    if sum(i["quantity"] * i["price_data"]["unit_amount"] for i in items) != order.total:
        raise RuntimeError(f"order {order.id}: its lines do not add up to its total")
    return items


def close_open(order_id: str) -> None:
    """Expire the order's open Checkout Session at Stripe before the order is paid another way
    or canceled; a session Stripe says completed means the order is being paid: 409."""
    session = open_session_of(order_id)
    db.session.rollback()
    if session is None:
        return
    _mark(session.stripe_session_id, _expire_at_stripe(session.stripe_session_id))


def _expire_at_stripe(stripe_session_id: str) -> str:
    """The session can take no payment any more: its local status now (`expired`, or
    `failed` for a completed session whose delayed payment failed); 409 when Stripe says it
    completed and is paid or being paid."""
    try:
        stripe_gateway.expire_checkout_session(stripe_session_id)
        return "expired"
    except stripe_gateway.StripeFailure:  # no longer open: go by what Stripe says it is
        session = stripe_gateway.retrieve_checkout_session(stripe_session_id, expand=["payment_intent"])
        if session["status"] == "expired":
            return "expired"
        if _payment_failed(session):
            return "failed"
        raise Conflict("The order is being paid through its hosted checkout.", code="checkout_completed") from None


def _payment_failed(session: dict) -> bool:
    """A completed session (read with its PaymentIntent expanded) whose payment failed: its
    PaymentIntent wants another payment method or was canceled; nothing was charged."""
    intent = session.get("payment_intent")
    return (session["status"] == "complete" and session.get("payment_status") == "unpaid"
            and isinstance(intent, dict) and intent["status"] in ("requires_payment_method", "canceled"))


@atomic
def _mark(stripe_session_id: str, status: str) -> CheckoutSession | None:
    session = db.session.scalar(select(CheckoutSession).where(
        CheckoutSession.stripe_session_id == stripe_session_id).with_for_update())
    if session is not None and session.status == "open":
        session.status = status
    return session


def handle_session_completed(checkout_session: dict) -> Payment | None:
    """`checkout.session.completed` / `async_payment_succeeded`: the shopper paid; the order's
    Payment is recorded and booked as a confirmation's (once, whatever else came first)."""
    if not _ours(checkout_session["id"]):
        return None
    session = stripe_gateway.retrieve_checkout_session(checkout_session["id"])
    if session["status"] != "complete" or session.get("payment_status") != "paid" or not session.get("payment_intent"):
        log.info("checkout session %s is %s/%s: nothing to book yet", session["id"], session["status"],
                 session.get("payment_status"))
        return None
    _adopt(session)
    from marketplace.payments.service import book_payment_intent

    return book_payment_intent(session["payment_intent"])


def handle_session_expired(checkout_session: dict) -> CheckoutSession | None:
    """`checkout.session.expired`: the session is closed; the order stays payable."""
    if not _ours(checkout_session["id"]):
        return None
    session = stripe_gateway.retrieve_checkout_session(checkout_session["id"])
    if session["status"] != "expired":
        return None
    return _mark(session["id"], "expired")


def handle_async_payment_failed(checkout_session: dict) -> CheckoutSession | None:
    """`checkout.session.async_payment_failed`: a delayed payment method failed after the
    session completed (never for a card); the order was never paid, and the session, failed,
    no longer stops it being paid another way."""
    local = _ours(checkout_session["id"])
    if local is None:
        return None
    session = stripe_gateway.retrieve_checkout_session(checkout_session["id"], expand=["payment_intent"])
    if not _payment_failed(session):
        return None
    log.info("checkout session %s: the delayed payment failed; order %s is payable again",
             checkout_session["id"], local.order_id)
    return _mark(session["id"], "failed")


def session_for_intent(payment_intent: dict) -> str | None:
    """The Stripe id of the order's Checkout Session a PaymentIntent not (yet) ours may come
    from: the order named in its metadata has one (no Stripe call for anyone else's)."""
    order_id = (payment_intent.get("metadata") or {}).get("order_id")
    if not order_id:
        return None
    return db.session.scalar(select(CheckoutSession.stripe_session_id).where(
        CheckoutSession.order_id == order_id, CheckoutSession.status.in_(("open", "complete")))
        .order_by(CheckoutSession.attempt.desc()).limit(1))


def _ours(stripe_session_id: str) -> CheckoutSession | None:
    session = db.session.scalar(select(CheckoutSession).where(CheckoutSession.stripe_session_id == stripe_session_id))
    db.session.rollback()
    return session


@atomic
def _adopt(session: dict) -> None:
    """Record the session's PaymentIntent as the order's Payment (once)."""
    local = db.session.scalar(select(CheckoutSession).where(CheckoutSession.stripe_session_id == session["id"]))
    order = lock_order(local.order_id)
    intent_id = session["payment_intent"]
    local.status, local.payment_intent_id = "complete", intent_id
    payment = order.payment_summary
    if payment is not None and payment.payment_intent_id == intent_id:
        return
    if payment is not None:
        # Never by design (one way at a time: no session opens beside a PaymentIntent, none
        # is made while a session may still complete); if it happens the shopper may pay twice.
        raise RuntimeError(f"order {order.id} has PaymentIntent {payment.payment_intent_id} and a completed "
                           f"checkout session {session['id']} ({intent_id}): look at both")
    payment = Payment(
        order_id=order.id, shopper_id=order.shopper_id, payment_intent_id=intent_id, client_secret="",
        charge_type=order.charge_type, amount=order.total, currency=order.currency,
        application_fee_amount=order.splits[0].platform_fee if order.charge_type == "destination" else None,
        status="processing", checkout_session_id=session["id"])
    db.session.add(payment)
    order.payment_intent_id = intent_id
    db.session.flush()
    audit.record("payment_intent.created", "payment", payment.id, amount=payment.amount, currency=payment.currency)
