"""The ledger postings of every payment movement: one journal entry per Stripe balance transaction.

Each entry records what Stripe records on one balance transaction (`txn_`), on the
account that owns it, keyed by the transaction id (so recording it twice is one entry):

    net    = the posting on `<owner>:stripe_balance`
    fee    = the posting on the fee account (0: no posting)
    amount = net + fee = minus the counter posting

`stripe_object_id` is the transaction's `source`, `stripe_account` is None for the
platform and `acct_...` for a vendor's connected account. Reconciliation matches an entry
to a balance transaction by source id, amount, fee and currency. V = vendor:<id>.

| movement (source, account)         | owner:stripe_balance  | fee account              | counter                  |
|------------------------------------|-----------------------|--------------------------|--------------------------|
| charge (ch_, platform) 1000 fee 59 | platform +941         | platform:stripe_fees +59 | shopper:clearing -1000   |
| transfer (tr_, platform) -X        | platform -X           |                          | V:transfer_clearing +X   |
| payment (py_, acct_) X fee F*      | V +(X-F)              | V:platform_fees +F       | V:transfer_clearing -X   |
| application fee (fee_, platform) F | platform +F           |                          | platform:fee_revenue -F  |
| refund (re_, platform) -R          | platform -R           |                          | platform:refunds +R      |
| transfer reversal (trr_, platform) | platform +r           |                          | V:transfer_clearing -r   |
| payment refund (pyr_, acct_) -r    | V -(r-f)              | V:platform_fees -f*      | V:transfer_clearing +r   |
| fee refund (fr_, platform) -f      | platform -f           |                          | platform:fee_revenue +f  |
| dispute (dp_, platform) -D fee 1500| platform -(D+1500)    | platform:stripe_fees +1500 | platform:disputes +D   |
| dispute won (dp_, platform) +D     | platform +D           |                          | platform:disputes -D     |
| countered fee (dp_, platform) -C   | platform -C           |                          | platform:stripe_fees +C  |
| countered fee back (dp_, platform) | platform +C           |                          | platform:stripe_fees -C  |

(*) F and f only on a destination charge, where Stripe takes the application fee from the
vendor's payment and gives it back on the payment refund.

Separate charges and transfers have no Stripe object for the platform fee (the platform
simply keeps it), so two internal entries, with no balance transaction and never matched
by reconciliation, keep `platform:fee_revenue` and `V:platform_fees` the same for both
charge types: `platform_fee` (platform:fee_revenue -F, V:platform_fees +F, per split at
payment) and `platform_fee_refund` (the reverse, f per refund allocation).

A refund that fails after it was made gives its money back to the platform (`refund_failure`,
+R on platform:refunds' counter). The vendors get back what it took from them by a new
transfer (tr_ / py_ as above, of r - f), and a `platform_fee` entry of f makes the fee the
refund had returned the platform's again, on either charge type.
"""
from __future__ import annotations

from datetime import datetime, timezone

from marketplace.ledger import service as ledger
from marketplace.ledger.service import Line

SHOPPER_CLEARING = "shopper:clearing"


def platform_balance() -> str:
    return ledger.platform("stripe_balance")


def vendor_balance(vendor_id: str) -> str:
    return ledger.vendor(vendor_id, "stripe_balance")


def _when(bt: dict) -> datetime | None:
    created = bt.get("created")
    return datetime.fromtimestamp(created, timezone.utc) if created else None


def record_bt(kind: str, bt: dict, *, owner: str, fee_account: str | None, counter: str,
              stripe_account: str | None, local_type: str, local_id: str) -> None:
    """Post one balance transaction: net on `owner`, fee on `fee_account`, -amount on `counter`."""
    currency, amount, fee = bt["currency"], int(bt["amount"]), int(bt.get("fee") or 0)
    net = amount - fee
    lines = [Line(owner, currency, net)] if net else []
    if fee:
        lines.append(Line(fee_account or ledger.platform("stripe_fees"), currency, fee))
    lines.append(Line(counter, currency, -amount))
    ledger.post(
        kind, lines, key=bt["id"], occurred_at=_when(bt), description=bt.get("description") or "",
        stripe_object_id=bt.get("source"), stripe_balance_transaction_id=bt["id"],
        stripe_account=stripe_account, local_type=local_type, local_id=local_id,
    )


def record_charge(bt: dict, order_id: str) -> None:
    """The shopper's payment reaching the platform, less Stripe's processing fee."""
    record_bt("charge", bt, owner=platform_balance(), fee_account=ledger.platform("stripe_fees"),
              counter=SHOPPER_CLEARING, stripe_account=None, local_type="order", local_id=order_id)


def record_transfer(bt: dict, vendor_id: str, split_id: str) -> None:
    """A transfer out of the platform's balance (tr_), or a reversal of one (trr_) coming back."""
    kind = "transfer" if int(bt["amount"]) < 0 else "transfer_reversal"
    record_bt(kind, bt, owner=platform_balance(), fee_account=None,
              counter=ledger.vendor(vendor_id, "transfer_clearing"), stripe_account=None,
              local_type="order_split", local_id=split_id)


def record_vendor_payment(bt: dict, vendor_id: str, account: str, split_id: str) -> None:
    """The vendor's side of a transfer (py_) or of a reversal (pyr_), application fee included."""
    kind = "vendor_payment" if int(bt["amount"]) > 0 else "vendor_payment_refund"
    record_bt(kind, bt, owner=vendor_balance(vendor_id),
              fee_account=ledger.vendor(vendor_id, "platform_fees"),
              counter=ledger.vendor(vendor_id, "transfer_clearing"), stripe_account=account,
              local_type="order_split", local_id=split_id)


def record_application_fee(bt: dict, order_id: str) -> None:
    """The platform's application fee (fee_) on a destination charge, or its refund (fr_)."""
    kind = "application_fee" if int(bt["amount"]) > 0 else "application_fee_refund"
    record_bt(kind, bt, owner=platform_balance(), fee_account=None,
              counter=ledger.platform("fee_revenue"), stripe_account=None,
              local_type="order", local_id=order_id)


def record_refund(bt: dict, refund_id: str) -> None:
    """Money returned to the shopper (re_), or given back by a failed refund."""
    kind = "refund" if int(bt["amount"]) < 0 else "refund_failure"
    record_bt(kind, bt, owner=platform_balance(), fee_account=None,
              counter=ledger.platform("refunds"), stripe_account=None,
              local_type="refund", local_id=refund_id)


def record_dispute(bt: dict, dispute_id: str) -> None:
    """A chargeback debit with its dispute fee, or its reinstatement when won (dp_); or the
    dispute countered fee charged for contesting it, and given back when it is won."""
    if bt.get("type") == "stripe_fee":
        kind = "dispute_fee" if int(bt["amount"]) < 0 else "dispute_fee_refund"
        record_bt(kind, bt, owner=platform_balance(), fee_account=None,
                  counter=ledger.platform("stripe_fees"), stripe_account=None,
                  local_type="dispute", local_id=dispute_id)
        return
    kind = "dispute" if int(bt["amount"]) < 0 else "dispute_reversal"
    record_bt(kind, bt, owner=platform_balance(), fee_account=ledger.platform("stripe_fees"),
              counter=ledger.platform("disputes"), stripe_account=None,
              local_type="dispute", local_id=dispute_id)


def record_platform_fee(split, amount: int, key: str, refund: bool = False) -> None:
    """Internal: the platform fee kept (or returned) on a separate-charges split, or kept again
    after a failed refund (either charge type)."""
    if amount <= 0:
        return
    sign = 1 if refund else -1
    ledger.post(
        "platform_fee_refund" if refund else "platform_fee",
        [Line(ledger.platform("fee_revenue"), split.currency, sign * amount),
         Line(ledger.vendor(split.vendor_id, "platform_fees"), split.currency, -sign * amount)],
        key=key, local_type="order_split", local_id=split.id,
    )
