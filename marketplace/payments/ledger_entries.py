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
| fee collection (trr_ as above; pyr_, acct_) -c | V -c      |                          | V:transfer_clearing +c   |
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

A destination charge whose application fee is short of the split's platform fee (a
subscription's first invoice: Stripe finalizes it before its fixed part can be set) has the
rest taken back from the vendor by a reversal of Stripe's transfer (`fee_collection`): its
two sides as above, the vendor's of kind `fee_collection`, and a `platform_fee` entry of c
(keyed `fee-collected-<movement>`) making it fee revenue, as on a separate charge.

A refund that fails after it was made gives its money back to the platform (`refund_failure`,
+R on platform:refunds' counter). The vendors get back what it took from them by a new
transfer (tr_ / py_ as above, of r - f), and a `platform_fee` entry of f makes the fee the
refund had returned the platform's again, on either charge type.
"""
from __future__ import annotations

from datetime import datetime, timezone

from marketplace.ledger import accounts as a
from marketplace.ledger import service as ledger
from marketplace.ledger.service import Line


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
        lines.append(Line(fee_account or a.STRIPE_FEES, currency, fee))
    lines.append(Line(counter, currency, -amount))
    ledger.post(
        kind, lines, key=bt["id"], occurred_at=_when(bt), description=bt.get("description") or "",
        stripe_object_id=bt.get("source"), stripe_balance_transaction_id=bt["id"],
        stripe_account=stripe_account, local_type=local_type, local_id=local_id,
    )


def record_charge(bt: dict, order_id: str) -> None:
    """The shopper's payment reaching the platform, less Stripe's processing fee."""
    record_bt(a.CHARGE, bt, owner=a.PLATFORM_BALANCE, fee_account=a.STRIPE_FEES,
              counter=a.SHOPPER_CLEARING, stripe_account=None, local_type="order", local_id=order_id)


def record_transfer(bt: dict, vendor_id: str, split_id: str) -> None:
    """A transfer out of the platform's balance (tr_), or a reversal of one (trr_) coming back."""
    kind = a.TRANSFER if int(bt["amount"]) < 0 else a.TRANSFER_REVERSAL
    record_bt(kind, bt, owner=a.PLATFORM_BALANCE, fee_account=None,
              counter=a.vendor(vendor_id, a.TRANSFER_CLEARING), stripe_account=None,
              local_type="order_split", local_id=split_id)


def record_vendor_payment(bt: dict, vendor_id: str, account: str, split_id: str) -> None:
    """The vendor's side of a transfer (py_) or of a reversal (pyr_), application fee included."""
    kind = a.VENDOR_PAYMENT if int(bt["amount"]) > 0 else a.VENDOR_PAYMENT_REFUND
    record_bt(kind, bt, owner=a.vendor(vendor_id), fee_account=a.vendor(vendor_id, a.PLATFORM_FEES),
              counter=a.vendor(vendor_id, a.TRANSFER_CLEARING), stripe_account=account,
              local_type="order_split", local_id=split_id)


def record_fee_collection(bt: dict, vendor_id: str, account: str, split_id: str) -> None:
    """The vendor's side (pyr_) of a reversal taking the part of its platform fee Stripe's
    application fee left out; the platform's side is a transfer reversal's (record_transfer)."""
    record_bt(a.FEE_COLLECTION, bt, owner=a.vendor(vendor_id), fee_account=a.vendor(vendor_id, a.PLATFORM_FEES),
              counter=a.vendor(vendor_id, a.TRANSFER_CLEARING), stripe_account=account,
              local_type="order_split", local_id=split_id)


def record_application_fee(bt: dict, order_id: str) -> None:
    """The platform's application fee (fee_) on a destination charge, or its refund (fr_)."""
    kind = a.APPLICATION_FEE if int(bt["amount"]) > 0 else a.APPLICATION_FEE_REFUND
    record_bt(kind, bt, owner=a.PLATFORM_BALANCE, fee_account=None,
              counter=a.FEE_REVENUE, stripe_account=None,
              local_type="order", local_id=order_id)


def record_fee_credit(bt: dict, vendor_id: str, account: str, split_id: str) -> None:
    """The vendor's side of an application fee refund made in the Dashboard: the fee it had
    paid comes back to its balance."""
    record_bt(a.APPLICATION_FEE_REFUND, bt, owner=a.vendor(vendor_id), fee_account=None,
              counter=a.vendor(vendor_id, a.FEE_CREDITS), stripe_account=account,
              local_type="order_split", local_id=split_id)


def record_refund(bt: dict, refund_id: str) -> None:
    """Money returned to the shopper (re_), or given back by a failed refund."""
    kind = a.REFUND if int(bt["amount"]) < 0 else a.REFUND_FAILURE
    record_bt(kind, bt, owner=a.PLATFORM_BALANCE, fee_account=None,
              counter=a.REFUNDS, stripe_account=None,
              local_type="refund", local_id=refund_id)


def record_dispute(bt: dict, dispute_id: str) -> None:
    """A chargeback debit with its dispute fee, or its reinstatement when won (dp_); or the
    dispute countered fee charged for contesting it, and given back when it is won."""
    if bt.get("type") == "stripe_fee":
        kind = a.DISPUTE_FEE if int(bt["amount"]) < 0 else a.DISPUTE_FEE_REFUND
        record_bt(kind, bt, owner=a.PLATFORM_BALANCE, fee_account=None,
                  counter=a.STRIPE_FEES, stripe_account=None,
                  local_type="dispute", local_id=dispute_id)
        return
    kind = a.DISPUTE if int(bt["amount"]) < 0 else a.DISPUTE_REVERSAL
    record_bt(kind, bt, owner=a.PLATFORM_BALANCE, fee_account=a.STRIPE_FEES,
              counter=a.DISPUTES, stripe_account=None,
              local_type="dispute", local_id=dispute_id)


def record_platform_fee(split, amount: int, key: str, refund: bool = False) -> None:
    """Internal: the platform fee kept (or returned) on a separate-charges split, or kept again
    after a failed refund (either charge type)."""
    if amount <= 0:
        return
    sign = 1 if refund else -1
    ledger.post(
        a.PLATFORM_FEE_REFUND if refund else a.PLATFORM_FEE,
        [Line(a.FEE_REVENUE, split.currency, sign * amount),
         Line(a.vendor(split.vendor_id, a.PLATFORM_FEES), split.currency, -sign * amount)],
        key=key, local_type="order_split", local_id=split.id,
    )


def record_share_held(m) -> None:
    """Internal: a transfer held while its vendor is suspended: the vendor's share stays on
    the platform's balance, owed to it (vendor:<id>:held against platform:held_for_vendors)."""
    ledger.post(a.SHARE_HELD, [Line(a.vendor(m.vendor_id, a.HELD), m.currency, m.amount),
                               Line(a.HELD_FOR_VENDORS, m.currency, -m.amount)],
                key=f"held-{m.id}", local_type="movement", local_id=m.id)


def record_share_released(m) -> None:
    """Internal: the held transfer was made (or given up): nothing is held for it any more."""
    if ledger.entry_for(f"held-{m.id}") is None:
        return
    ledger.post(a.SHARE_RELEASED, [Line(a.vendor(m.vendor_id, a.HELD), m.currency, -m.amount),
                                   Line(a.HELD_FOR_VENDORS, m.currency, m.amount)],
                key=f"released-{m.id}", local_type="movement", local_id=m.id)
