"""The ledger's accounts and entry kinds, named here once.

Accounts are typed strings, `<owner>:<name>`: the platform's (`platform:stripe_balance`,
`platform:fee_revenue` ...), each vendor's (`vendor:<id>:stripe_balance` ...) and the
shoppers' clearing account. `<owner>:stripe_balance` mirrors the owner's Stripe balance (one
entry per balance transaction), so reconciliation and balances read those accounts; the
fee accounts hold the fee part of a balance transaction. Entry kinds name what an entry
records; `ledger.post` refuses any other.
"""
from __future__ import annotations

# The platform's accounts.
PLATFORM_BALANCE = "platform:stripe_balance"
FEE_REVENUE = "platform:fee_revenue"  # application fees and the fee kept on separate charges
STRIPE_FEES = "platform:stripe_fees"  # processing and dispute fees Stripe charged
REFUNDS = "platform:refunds"
DISPUTES = "platform:disputes"
SHOPPER_CLEARING = "shopper:clearing"  # what shoppers paid (every captured charge)
HELD_FOR_VENDORS = "platform:held_for_vendors"  # suspended vendors' shares kept on the platform

# A vendor's accounts, by name (see vendor()).
BALANCE = "stripe_balance"
PAID_OUT = "paid_out"
PLATFORM_FEES = "platform_fees"  # the platform's fee, on the vendor's side
TRANSFER_CLEARING = "transfer_clearing"  # the platform's transfer meeting the vendor's payment
HELD = "held"  # the vendor's share kept on the platform while it is suspended
FEE_CREDITS = "fee_credits"  # application fees refunded to the vendor (in the Dashboard)

# SQL LIKE patterns and suffixes over account names.
VENDOR_BALANCES = f"vendor:%:{BALANCE}"
ANY_BALANCE = f"%:{BALANCE}"
FEE_SUFFIXES = (":stripe_fees", f":{PLATFORM_FEES}")


def platform(name: str) -> str:
    """A platform account, e.g. platform('stripe_balance')."""
    return f"platform:{name}"


def vendor(vendor_id: str, name: str = BALANCE) -> str:
    """A vendor account, e.g. vendor('ven_1', 'paid_out'); its Stripe balance by default."""
    return f"vendor:{vendor_id}:{name}"


def vendor_id_of(account: str) -> str:
    """`ven_1` from `vendor:ven_1:stripe_balance`."""
    return account.split(":", 2)[1]


# Entry kinds: one per kind of balance transaction (and its reverse), and the internal ones.
CHARGE = "charge"
TRANSFER, TRANSFER_REVERSAL = "transfer", "transfer_reversal"
VENDOR_PAYMENT, VENDOR_PAYMENT_REFUND = "vendor_payment", "vendor_payment_refund"
FEE_COLLECTION = "fee_collection"  # the vendor's side (pyr_) of a reversal taking part of its fee
APPLICATION_FEE, APPLICATION_FEE_REFUND = "application_fee", "application_fee_refund"
REFUND, REFUND_FAILURE = "refund", "refund_failure"
DISPUTE, DISPUTE_REVERSAL = "dispute", "dispute_reversal"
DISPUTE_FEE, DISPUTE_FEE_REFUND = "dispute_fee", "dispute_fee_refund"
PLATFORM_FEE, PLATFORM_FEE_REFUND = "platform_fee", "platform_fee_refund"  # internal: no balance transaction
SHARE_HELD, SHARE_RELEASED = "vendor_share_held", "vendor_share_released"  # internal too
PAYOUT, PAYOUT_FAILURE, PAYOUT_CANCEL = "payout", "payout_failure", "payout_cancel"

PAYOUT_KINDS = (PAYOUT, PAYOUT_FAILURE, PAYOUT_CANCEL)
SALE_KINDS = (VENDOR_PAYMENT, PLATFORM_FEE, FEE_COLLECTION)  # a collected fee: gross -F, fee +F
TAKEBACK_KINDS = (VENDOR_PAYMENT_REFUND, PLATFORM_FEE_REFUND, APPLICATION_FEE_REFUND)  # (a fee credit counts as -)
KINDS = frozenset({
    CHARGE, TRANSFER, TRANSFER_REVERSAL, VENDOR_PAYMENT, VENDOR_PAYMENT_REFUND, FEE_COLLECTION, APPLICATION_FEE,
    APPLICATION_FEE_REFUND, REFUND, REFUND_FAILURE, DISPUTE, DISPUTE_REVERSAL, DISPUTE_FEE,
    DISPUTE_FEE_REFUND, PLATFORM_FEE, PLATFORM_FEE_REFUND, SHARE_HELD, SHARE_RELEASED, *PAYOUT_KINDS,
})
