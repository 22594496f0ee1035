"""Shoppers' wallets: the Stripe Customer made on first need, and the cards saved on it.

Stripe is the source of truth for what is attached to a Customer; the `saved_payment_methods`
rows mirror it (what the API lists, and whose card a `pm_...` is) and are kept in line by our
own calls and by the `payment_method.attached/detached` events (a card saved by a payment's
`setup_future_usage`, or detached in Stripe's Dashboard). A card never reaches this side
beyond its brand, last four digits and expiry.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update

from marketplace import audit, stripe_gateway, stripe_requests
from marketplace.auth.models import User
from marketplace.database import insert_new, new_id, utcnow
from marketplace.errors import AppError, NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.transaction import atomic
from marketplace.wallets.models import Customer, SavedPaymentMethod

log = logging.getLogger(__name__)

# A card saved for later is used when the shopper is not there to authenticate (renewals,
# one-click reorders): Stripe then asks for authentication up front where the bank wants it.
SETUP_USAGE = "off_session"
# Cards only, confirmed by the server or Stripe.js with no redirect (see payments.service).
AUTOMATIC_PAYMENT_METHODS = {"enabled": True, "allow_redirects": "never"}
# Stripe keeps an idempotency key's answer 24 hours; a row older than this may have lost one.
KEY_LIFETIME = timedelta(hours=23)


def customer_key(user_id: str) -> str:
    """The idempotency key of the shopper's one Customer."""
    return f"customer-{user_id}"


def attach_key(customer: Customer, payment_method_id: str) -> str:
    """The idempotency key of attaching a card to the Customer: a new one after each card
    the Customer had removed (a card saved, removed and saved again within Stripe's 24
    hours is attached again, not answered with the first attach)."""
    return f"attach-{customer.id}-{payment_method_id}-{customer.removed_payment_methods}"


def ensure_customer(user: User) -> Customer:
    """The shopper's Customer, made at Stripe on first need, once whatever the concurrency.

    The local row is inserted first (ON CONFLICT DO NOTHING), then locked while Stripe is
    asked: a concurrent first use waits on the lock and finds the Stripe id. A creation
    whose answer was lost is made again with the same key (Stripe answers with the same
    Customer) and, past the key's 24 hours, found by its metadata before a new one is made."""
    customer = _claim(user)
    if customer.stripe_customer_id is None:
        params = stripe_requests.frozen(customer_key(user.id))
        found = _find_made(user, params["email"]) if customer.created_at < utcnow() - KEY_LIFETIME else None
        made = found or stripe_requests.send(stripe_gateway.create_customer, params, customer_key(user.id))
        customer.stripe_customer_id, customer.email = made["id"], made.get("email")
        audit.record("customer.created", "customer", customer.id)
    if customer.email != user.email:  # the shopper's email changed: Stripe's receipts follow
        stripe_gateway.update_customer(customer.stripe_customer_id, {"email": user.email})
        customer.email = user.email
    db.session.commit()
    return customer


def _claim(user: User) -> Customer:
    """The user's Customer row, inserted if missing, locked for this transaction; the Stripe
    request making it is fixed with it (a retry sends the same email though it changed)."""
    db.session.execute(insert_new(Customer.__table__, "user_id", id=new_id("cst"), user_id=user.id,
                                  created_at=utcnow(), updated_at=utcnow()))
    stripe_requests.freeze(customer_key(user.id), lambda: {"email": user.email, "metadata": {"user_id": user.id}})
    db.session.commit()
    return db.session.scalar(select(Customer).where(Customer.user_id == user.id)
                             .with_for_update().execution_options(populate_existing=True))


def _find_made(user: User, email: str) -> dict | None:
    """A Customer made for this user earlier (with `email`) whose answer never reached us."""
    for found in stripe_gateway.list_customers(email):
        if (found.get("metadata") or {}).get("user_id") == user.id:
            return found
    return None


def customer_of(user_id: str) -> Customer | None:
    """The shopper's Customer if one was made (no Stripe call)."""
    return db.session.scalar(select(Customer).where(
        Customer.user_id == user_id, Customer.stripe_customer_id.is_not(None)))


def create_setup_intent(user: User) -> dict:
    """A SetupIntent saving a card on the shopper's Customer for off-session use."""
    customer = ensure_customer(user)
    params = {"customer": customer.stripe_customer_id, "usage": SETUP_USAGE,
              "automatic_payment_methods": AUTOMATIC_PAYMENT_METHODS,
              "metadata": {"user_id": user.id}}
    intent = stripe_gateway.create_setup_intent(params, f"setup-intent-{user.id}-{uuid.uuid4().hex}")
    return {"setup_intent_id": intent["id"], "client_secret": intent["client_secret"], "status": intent["status"]}


def save(user: User, payment_method_id: str) -> dict:
    """Attach a PaymentMethod to the shopper's Customer (a test `pm_card_...` is attached as
    a new PaymentMethod of its own, as Stripe does) and record it."""
    mine = _own(user, payment_method_id, missing_ok=True)
    if mine is not None:
        return describe(mine, customer_of(user.id))
    if _saved_by_other(user, payment_method_id):
        raise _not_found()
    customer = ensure_customer(user)
    try:
        attached = stripe_gateway.attach_payment_method(
            payment_method_id, customer.stripe_customer_id, attach_key(customer, payment_method_id))
    except (stripe_gateway.StripeFailure, ValidationFailed):
        # Stripe's refusals carry no code: what the PaymentMethod is now says why.
        exists, owner = _stripe_owner(payment_method_id)
        if not exists or owner not in (None, customer.stripe_customer_id):
            raise _not_found() from None  # none such, or another customer's
        raise ValidationFailed("This payment method cannot be saved (it was used once already).",
                               details={"payment_method": ["Refused by the payment provider."]}) from None
    if attached.get("customer") != customer.stripe_customer_id:
        raise _not_found()
    row = record_attached(attached)
    audit.record("payment_method.saved", "customer", customer.id)
    db.session.commit()
    return describe(row, customer)


def record_attached(payment_method: dict) -> SavedPaymentMethod | None:
    """Mirror a PaymentMethod Stripe shows attached to one of our Customers (once)."""
    customer = db.session.scalar(select(Customer).where(
        Customer.stripe_customer_id == payment_method.get("customer")))
    if customer is None:
        return None
    row = db.session.get(SavedPaymentMethod, payment_method["id"])
    if row is None:  # inserted once though the answer and the event record it at the same time
        card = payment_method.get("card") or {}
        db.session.execute(insert_new(
            SavedPaymentMethod.__table__, "stripe_payment_method_id",
            stripe_payment_method_id=payment_method["id"], user_id=customer.user_id,
            customer_id=customer.id, brand=card.get("brand"), last4=card.get("last4"),
            exp_month=card.get("exp_month"), exp_year=card.get("exp_year"), created_at=utcnow()))
        row = db.session.get(SavedPaymentMethod, payment_method["id"])
    return row


def list_saved(user: User) -> dict:
    """The shopper's saved cards, newest first (from the mirror: no Stripe call)."""
    customer = customer_of(user.id)
    rows = db.session.scalars(select(SavedPaymentMethod).where(SavedPaymentMethod.user_id == user.id)
                              .order_by(SavedPaymentMethod.created_at.desc(),
                                        SavedPaymentMethod.stripe_payment_method_id)).all()
    return {"data": [describe(row, customer) for row in rows]}


def remove(user: User, payment_method_id: str) -> None:
    """Detach one of the shopper's cards; the default, when it was this one, is cleared."""
    row = _own(user, payment_method_id)
    db.session.rollback()
    try:
        stripe_gateway.detach_payment_method(payment_method_id)
    except stripe_gateway.StripeFailure:  # refused: detached already (in the Dashboard)?
        exists, owner = _stripe_owner(payment_method_id)
        if exists and owner is not None:
            raise
        log.info("payment method %s was no longer attached", payment_method_id)
    _forget(row.stripe_payment_method_id)
    audit.record("payment_method.removed", "customer", row.customer_id)
    db.session.commit()


def handle_attached(payment_method: dict) -> SavedPaymentMethod | None:
    """`payment_method.attached`: a card attached to one of our Customers (by a payment's
    `setup_future_usage`, a SetupIntent, the Dashboard) is mirrored, read again from Stripe;
    no call for anyone else's Customer."""
    known = db.session.scalar(select(Customer.id).where(
        Customer.stripe_customer_id == payment_method.get("customer")))
    db.session.rollback()
    if known is None:
        return None
    current = stripe_gateway.retrieve_payment_method(payment_method["id"])
    row = record_attached(current)
    db.session.commit()
    return row


def handle_detached(payment_method: dict) -> bool | None:
    """`payment_method.detached`: a card we mirror no longer attached is forgotten (and
    cleared as default); None when we had no such card."""
    known = db.session.get(SavedPaymentMethod, payment_method["id"])
    db.session.rollback()
    if known is None:
        return None
    if stripe_gateway.retrieve_payment_method(payment_method["id"]).get("customer"):
        return None  # attached again since: nothing to forget
    return _forget_now(payment_method["id"])


@atomic
def _forget_now(payment_method_id: str) -> bool:
    return _forget(payment_method_id)


def _forget(payment_method_id: str) -> bool:
    owner = db.session.scalar(select(SavedPaymentMethod.customer_id).where(
        SavedPaymentMethod.stripe_payment_method_id == payment_method_id))
    gone = db.session.execute(delete(SavedPaymentMethod).where(
        SavedPaymentMethod.stripe_payment_method_id == payment_method_id)).rowcount
    if gone:
        db.session.execute(update(Customer).where(Customer.id == owner).values(
            removed_payment_methods=Customer.removed_payment_methods + 1, updated_at=utcnow()))
    db.session.execute(update(Customer).where(Customer.default_payment_method_id == payment_method_id)
                       .values(default_payment_method_id=None, updated_at=utcnow()))
    return gone == 1


def set_default(user: User, payment_method_id: str) -> dict:
    """Make one of the shopper's cards the default (on the Customer at Stripe too)."""
    row = _own(user, payment_method_id)
    customer = customer_of(user.id)
    stripe_gateway.update_customer(customer.stripe_customer_id,
                                   {"invoice_settings": {"default_payment_method": payment_method_id}})
    customer.default_payment_method_id = payment_method_id
    db.session.commit()
    return describe(row, customer)


def payment_method_for(user: User, requested: str | None) -> tuple[str, bool]:
    """The PaymentMethod a confirmation uses: (id, saved on the shopper's Customer).

    A saved card of the shopper's; or the default when none is named (none: 422); another
    shopper's card is a 404; any other id is a one-off payment method (a test card)."""
    if requested is None:
        customer = customer_of(user.id)
        if customer is None or customer.default_payment_method_id is None:
            raise ValidationFailed(
                "Give a payment_method: the shopper has no default one.", code="payment_method_required",
                details={"payment_method": ["Required when no default payment method is saved."]})
        return customer.default_payment_method_id, True
    if _own(user, requested, missing_ok=True) is not None:
        return requested, True
    if _saved_by_other(user, requested):
        raise _not_found()
    return requested, False


def describe(row: SavedPaymentMethod, customer: Customer | None) -> dict:
    """The API's PaymentMethod."""
    return {"id": row.stripe_payment_method_id, "brand": row.brand, "last4": row.last4,
            "exp_month": row.exp_month, "exp_year": row.exp_year,
            "is_default": customer is not None and customer.default_payment_method_id == row.stripe_payment_method_id}


def _own(user: User, payment_method_id: str, missing_ok: bool = False) -> SavedPaymentMethod | None:
    row = db.session.get(SavedPaymentMethod, payment_method_id)
    if row is None or row.user_id != user.id:
        if missing_ok:
            return None
        raise _not_found()
    return row


def _saved_by_other(user: User, payment_method_id: str) -> bool:
    row = db.session.get(SavedPaymentMethod, payment_method_id)
    return row is not None and row.user_id != user.id


def _stripe_owner(payment_method_id: str) -> tuple[bool, str | None]:
    """(Stripe has the PaymentMethod, the Customer it is attached to now)."""
    try:
        return True, stripe_gateway.retrieve_payment_method(payment_method_id).get("customer")
    except (stripe_gateway.StripeFailure, ValidationFailed) as error:
        if isinstance(error, ValidationFailed) or error.details.get("stripe_code") == "resource_missing":
            return False, None
        raise


def _not_found() -> AppError:
    return NotFound("No such payment method.", code="payment_method_not_found")
