"""The ledger entries of payouts: one per Stripe balance transaction, as for payments.

| movement (source, account)              | vendor:<id>:stripe_balance | vendor:<id>:paid_out |
|-----------------------------------------|----------------------------|----------------------|
| payout (po_, acct_) -X                  | -X                         | +X                   |
| payout_failure / payout_cancel (po_) +X | +X                         | -X                   |
"""
from __future__ import annotations

from datetime import datetime, timezone

from marketplace.ledger import accounts as a
from marketplace.ledger import service as ledger
from marketplace.ledger.service import Line
from marketplace.payouts.models import PAYOUT_RANK, Payout


def _post(kind: str, payout: Payout, bt: dict) -> None:
    amount = int(bt["amount"])
    ledger.post(
        kind,
        [Line(a.vendor(payout.vendor_id), payout.currency, amount),
         Line(a.vendor(payout.vendor_id, a.PAID_OUT), payout.currency, -amount)],
        key=bt["id"], occurred_at=datetime.fromtimestamp(bt["created"], timezone.utc),
        description=bt.get("description") or "", stripe_object_id=bt.get("source"),
        stripe_balance_transaction_id=bt["id"], stripe_account=payout.stripe_account,
        local_type="payout", local_id=payout.id,
    )


def record_created(payout: Payout, stripe_payout: dict) -> None:
    """The payout left the vendor's Stripe balance: post it, keep Stripe's id and state."""
    bt = stripe_payout["balance_transaction"]
    if isinstance(bt, dict):
        _post(a.PAYOUT, payout, bt)
    payout.stripe_payout_id = stripe_payout["id"]
    move_forward(payout, stripe_payout)


def move_forward(payout: Payout, stripe_payout: dict) -> bool:
    """Apply Stripe's state if it is further on; a failure or cancel returns the money."""
    status = stripe_payout["status"]
    if PAYOUT_RANK.get(status, -1) <= PAYOUT_RANK[payout.status]:
        return False
    payout.status = status
    if status == "paid":
        arrival = stripe_payout.get("arrival_date")
        payout.paid_at = datetime.fromtimestamp(arrival, timezone.utc) if arrival else None
    if status in ("failed", "canceled"):
        payout.failure_code = stripe_payout.get("failure_code") or payout.failure_code
        bt = stripe_payout.get("failure_balance_transaction")
        if isinstance(bt, dict):
            _post(a.PAYOUT_FAILURE if status == "failed" else a.PAYOUT_CANCEL, payout, bt)
    return True
