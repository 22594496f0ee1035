"""Vendor onboarding on Stripe Express, account state, fee policy and admin decisions."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from marketplace import audit, stripe_gateway
from marketplace.auth.models import User
from marketplace.database import isoformat, utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.pagination import paginate
from marketplace.vendors.models import Vendor

log = logging.getLogger(__name__)

UNSET: Any = object()


class FeePolicy(NamedTuple):
    percent_bps: int
    fixed: int


def fee_policy(vendor: Vendor) -> FeePolicy:
    """The policy that applies to the vendor's new orders: its override or the platform default."""
    if vendor.fee_percent_bps is not None and vendor.fee_fixed is not None:
        return FeePolicy(vendor.fee_percent_bps, vendor.fee_fixed)
    config = current_app.config
    return FeePolicy(config["PLATFORM_FEE_BPS"], config["PLATFORM_FEE_FIXED"])


def account_idempotency_key(vendor: Vendor) -> str:
    """The Stripe idempotency key of the vendor's one account creation."""
    return f"vendor-account-{vendor.id}"


def vendor_for_user(user: User) -> Vendor:
    """The user's vendor profile; 404 vendor_not_found when there is none yet."""
    vendor = db.session.scalar(select(Vendor).where(Vendor.user_id == user.id))
    if vendor is None:
        raise NotFound("Create your vendor profile first.", code="vendor_not_found")
    return vendor


def create_vendor(user: User, display_name: str, country: str, email: str | None = None) -> Vendor:
    """Create the user's vendor row, then its Express account (idempotency key from the vendor id).

    The row is committed before Stripe is called, so no transaction stays open over the
    network. If Stripe definitively rejects the account (a 422: e.g. an unsupported
    country), nothing exists at Stripe and the row is deleted, so the user can try again
    with other values. If the outcome is unknown (timeout, 5xx, rate limit), the row stays
    without an account and the error is returned; calling POST /api/vendors again (or
    asking for an onboarding link) resumes with the stored country and email and the same
    idempotency key, so Stripe answers with the account it may already have made instead
    of creating a second one. Only a vendor with an account is `vendor_exists` (409).
    """
    vendor = db.session.scalar(select(Vendor).where(Vendor.user_id == user.id))
    if vendor is not None and vendor.stripe_account_id is not None:
        raise Conflict("You already have a vendor profile.", code="vendor_exists")
    if vendor is None:
        vendor = Vendor(
            user_id=user.id, display_name=display_name, country=country.upper(),
            email=email or user.email,
        )
        db.session.add(vendor)
    else:
        vendor.display_name = display_name
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("You already have a vendor profile.", code="vendor_exists") from None
    return _ensure_account(vendor, delete_on_rejection=True)


def _ensure_account(vendor: Vendor, delete_on_rejection: bool = False) -> Vendor:
    if vendor.stripe_account_id is not None:
        return vendor
    try:
        account = stripe_gateway.create_express_account(
            vendor.id, vendor.country, vendor.email, account_idempotency_key(vendor)
        )
    except ValidationFailed:
        if delete_on_rejection:
            db.session.delete(vendor)
            db.session.commit()
        raise
    vendor.stripe_account_id = account["id"]
    _apply_account(vendor, account)
    db.session.commit()
    log.info("vendor %s linked to stripe account %s", vendor.id, vendor.stripe_account_id)
    return vendor


def onboarding_link(user: User) -> dict:
    """A Stripe Account Link for the user's vendor (`{url, expires_at}`)."""
    vendor = _ensure_account(vendor_for_user(user))
    config = current_app.config
    link = stripe_gateway.create_account_link(
        vendor.stripe_account_id,
        refresh_url=config["STRIPE_ONBOARDING_REFRESH_URL"],
        return_url=config["STRIPE_ONBOARDING_RETURN_URL"],
    )
    expires_at = datetime.fromtimestamp(int(link["expires_at"]), tz=timezone.utc)
    return {"url": link["url"], "expires_at": isoformat(expires_at)}


def dashboard_link(user: User) -> dict:
    """A single-use Stripe Express Dashboard login link for the user's vendor (`{url}`).

    No Stripe account yet: 409 `stripe_account_missing` (an onboarding link makes one). Stripe
    decides whether the account has a dashboard; when it refuses, the account is read again
    to say why: 409 `onboarding_incomplete`, or `dashboard_unavailable` for an account that
    is not an Express one.
    """
    vendor = vendor_for_user(user)
    if vendor.stripe_account_id is None:
        raise Conflict("Your vendor profile has no Stripe account yet: ask for an onboarding link first.",
                       code="stripe_account_missing")
    try:
        link = stripe_gateway.create_login_link(vendor.stripe_account_id)
    except stripe_gateway.LoginLinkRefused as refused:
        account = stripe_gateway.retrieve_account(vendor.stripe_account_id)
        if _express(account) and not account.get("details_submitted"):
            raise Conflict("Finish onboarding first: ask for an onboarding link.", code="onboarding_incomplete",
                           details=refused.details) from None
        raise
    return {"url": link["url"]}


def _express(account: dict) -> bool:
    dashboard = ((account.get("controller") or {}).get("stripe_dashboard") or {}).get("type")
    return dashboard == "express" or account.get("type") == "express"


def derive_status(account: dict) -> str:
    """onboarding, active or restricted from a Stripe account (suspension is ours, not Stripe's)."""
    requirements = account.get("requirements") or {}
    due = requirements.get("currently_due") or []
    charges, payouts = bool(account.get("charges_enabled")), bool(account.get("payouts_enabled"))
    if charges and payouts and not due and not requirements.get("disabled_reason"):
        return "active"
    if not account.get("details_submitted") and not charges and not payouts:
        return "onboarding"
    return "restricted"


def _apply_account(vendor: Vendor, account: dict) -> None:
    requirements = account.get("requirements") or {}
    vendor.charges_enabled = bool(account.get("charges_enabled"))
    vendor.payouts_enabled = bool(account.get("payouts_enabled"))
    vendor.details_submitted = bool(account.get("details_submitted"))
    vendor.requirements_due = sorted(requirements.get("currently_due") or [])
    vendor.disabled_reason = requirements.get("disabled_reason")
    vendor.status = "suspended" if vendor.suspended else derive_status(account)
    vendor.account_synced_at = utcnow()


def apply_account_update(account: dict, refetch: bool = True) -> Vendor | None:
    """Bring a vendor in line with its Stripe account (the `account.updated` handler).

    Idempotent, and safe against events arriving out of order: with `refetch` (the
    default) the payload only names the account and its current state is fetched from
    Stripe, so a stale event can never roll a vendor back. An unknown account is ignored
    (None), except that an account whose metadata names a vendor still waiting for its
    account is linked to it (Stripe created it, our commit did not happen). Suspension
    is an admin decision that no account update lifts.
    """
    account_id = account.get("id")
    vendor = db.session.scalar(select(Vendor).where(Vendor.stripe_account_id == account_id))
    if vendor is None:
        vendor = _orphan_vendor(account)
    if vendor is None:
        log.info("account update for unknown account %s ignored", account_id)
        db.session.rollback()
        return None
    if refetch:
        account = stripe_gateway.retrieve_account(account_id)
    vendor.stripe_account_id = account_id
    _apply_account(vendor, account)
    db.session.commit()
    return vendor


def _orphan_vendor(account: dict) -> Vendor | None:
    vendor_id = (account.get("metadata") or {}).get("vendor_id")
    if not vendor_id:
        return None
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None or vendor.stripe_account_id is not None:
        return None
    return vendor


def list_vendors(page: int, per_page: int, status: str | None = None) -> dict:
    """Every vendor, newest first (admin)."""
    stmt = select(Vendor).order_by(Vendor.created_at.desc(), Vendor.id.desc())
    if status:
        stmt = stmt.where(Vendor.status == status)
    return paginate(stmt, page, per_page).as_dict()


def admin_update_vendor(vendor_id: str, fee_policy: Any = UNSET, status: str | None = None) -> Vendor:
    """Set or clear a vendor's fee override and suspend or reinstate it (admin).

    Status transitions an admin may make: any vendor -> `suspended`; `active` lifts a
    suspension, after which the status is whatever the Stripe account allows (active,
    restricted or onboarding): an admin cannot make a vendor sell when Stripe will not
    let its account take charges. Setting the current state again is a no-op. Fee changes
    apply to orders created afterwards only (fees are frozen on each order's splits).
    `fee_policy=None` removes the override, so the platform default applies again.
    """
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None:
        raise NotFound("No such vendor.", code="vendor_not_found")
    if fee_policy is not UNSET:
        vendor.fee_percent_bps = None if fee_policy is None else fee_policy["percent_bps"]
        vendor.fee_fixed = None if fee_policy is None else fee_policy["fixed"]
    if status == "suspended":
        vendor.suspended, vendor.status = True, "suspended"
    elif status == "active" and vendor.suspended:
        vendor.suspended = False
        vendor.status = _derived_from_columns(vendor)
    if fee_policy is not UNSET:
        audit.record("vendor.fee_policy_changed", "vendor", vendor.id)
    if status is not None:
        audit.record(f"vendor.status_set_{status}", "vendor", vendor.id)
        from marketplace import outbox, tasks

        outbox.add(tasks.FOLLOW_VENDOR_SUBSCRIPTIONS, vendor.id)  # renewals held, or paid again
    db.session.commit()
    if status == "active":  # its shares held on the platform meanwhile go out now
        from marketplace.movements import engine

        engine.wake([m.id for m in engine.live(vendor_id=vendor.id) if m.status == "planned"])
    log.info("admin updated vendor %s (status=%s, fee_policy=%s)", vendor.id, vendor.status,
             "unchanged" if fee_policy is UNSET else fee_policy)
    return vendor


def _derived_from_columns(vendor: Vendor) -> str:
    return derive_status({
        "charges_enabled": vendor.charges_enabled,
        "payouts_enabled": vendor.payouts_enabled,
        "details_submitted": vendor.details_submitted,
        "requirements": {"currently_due": vendor.requirements_due,
                         "disabled_reason": vendor.disabled_reason},
    })
