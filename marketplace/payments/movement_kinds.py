"""The Stripe side of the payments' movements: transfers, retransfers, reversals (fee
collections too), refunds.

Each kind sends its request under the movement's key, finds one an earlier attempt made
(by the movement id in its metadata), and hands the result to the domain module that
records it (refunds, disputes, transfers). Every read the recording needs (the vendor's
side of a transfer, a refund's balance transaction) is made here, with no transaction open.
"""
from __future__ import annotations

from marketplace import stripe_gateway
from marketplace.errors import AppError
from marketplace.movements.engine import Kind, register
from marketplace.movements.models import Movement


def _metadata(m: Movement) -> dict:
    links = {name: getattr(m, name) for name in ("order_id", "split_id", "refund_id", "dispute_id")
             if getattr(m, name)}
    return {**links, "movement_id": m.id}


def _ours(obj: dict, m: Movement) -> bool:
    return (obj.get("metadata") or {}).get("movement_id") == m.id


# transfers and retransfers ------------------------------------------------------------------

def _transfer_result(transfer: dict) -> dict:
    return {"id": transfer["id"], "transfer": transfer, "payment": vendor_side(transfer)}


# A transfer read with these shows both sides: no second read for the vendor's.
TRANSFER_EXPAND = ["balance_transaction", "destination_payment.balance_transaction"]


def vendor_side(transfer: dict) -> dict:
    """The `py_` payment a transfer left on the vendor's account, with its balance transaction
    (read from Stripe only when the transfer was not read with it expanded)."""
    payment = transfer["destination_payment"]
    if isinstance(payment, dict) and isinstance(payment.get("balance_transaction"), dict):
        return payment
    payment_id = payment["id"] if isinstance(payment, dict) else payment
    return stripe_gateway.retrieve_charge(payment_id, account=transfer["destination"], expand=["balance_transaction"])


def transfer_shown(transfer: dict) -> dict:
    """What the transfer movement records, from a transfer Stripe showed (read with
    TRANSFER_EXPAND, e.g. through a charge with payments.service.SUCCESS_EXPAND)."""
    return _transfer_result(transfer)


def send_transfer(m: Movement) -> dict:
    params = {"amount": m.amount, "currency": m.currency, "destination": m.destination,
              "transfer_group": m.params["transfer_group"], "metadata": _metadata(m),
              "expand": TRANSFER_EXPAND}
    if m.kind == "transfer":  # the split's share of the charge, whatever the balance
        params["source_transaction"] = m.source_id
    return _transfer_result(stripe_gateway.create_transfer(params, m.idempotency_key))


def find_transfer(m: Movement) -> dict | None:
    if m.by_stripe:  # a destination charge's transfer: Stripe makes it when the charge settles
        charge = stripe_gateway.retrieve_charge(m.source_id, expand=[f"transfer.{e}" for e in TRANSFER_EXPAND])
        transfer = charge.get("transfer")
        return _transfer_result(transfer) if isinstance(transfer, dict) else None
    for transfer in stripe_gateway.list_transfers(m.params["transfer_group"]):
        if _ours(transfer, m):
            return _transfer_result(transfer)
    return None


def record_transfer(m: Movement, result: dict) -> None:
    from marketplace.payments import transfers

    transfers.record(m, result["transfer"], result["payment"])


# reversals ----------------------------------------------------------------------------------

# A reversal read with these shows both sides: no second read for the vendor's `pyr_`.
REVERSAL_EXPAND = ["balance_transaction", "destination_payment_refund.balance_transaction"]


def _reversal_result(reversal: dict, m: Movement) -> dict:
    refund = reversal["destination_payment_refund"]
    if not (isinstance(refund, dict) and isinstance(refund.get("balance_transaction"), dict)):
        refund = stripe_gateway.retrieve_refund(refund["id"] if isinstance(refund, dict) else refund,
                                                account=m.destination, expand=["balance_transaction"])
    return {"id": reversal["id"], "reversal": reversal, "vendor_refund": refund}


def send_reversal(m: Movement) -> dict:
    reversal = stripe_gateway.create_transfer_reversal(
        m.source_id, {"amount": m.amount, "metadata": _metadata(m), "expand": REVERSAL_EXPAND},
        m.idempotency_key)
    return _reversal_result(reversal, m)


def find_reversal(m: Movement) -> dict | None:
    made_by_stripe = m.params.get("stripe_reversal")  # with a Dashboard refund (see adoption)
    for reversal in stripe_gateway.list_transfer_reversals(m.source_id):
        if reversal["id"] == made_by_stripe or _ours(reversal, m):
            return _reversal_result(reversal, m)
    return None


def record_reversal(m: Movement, result: dict) -> None:
    from marketplace.payments import transfers

    transfers.record_reversal_movement(m, result["reversal"], result["vendor_refund"])


def record_fee_collection(m: Movement, result: dict) -> None:
    from marketplace.payments import transfers

    transfers.record_fee_collection(m, result["reversal"], result["vendor_refund"])


# refunds ------------------------------------------------------------------------------------

def send_refund(m: Movement) -> dict:
    params = {"charge": m.source_id, "amount": m.amount, "reason": m.params["reason"],
              "metadata": _metadata(m), "expand": ["balance_transaction"]}
    refund = stripe_gateway.create_refund(params, m.idempotency_key)
    return {"id": refund["id"], "refund": refund}


def find_refund(m: Movement) -> dict | None:
    for refund in stripe_gateway.list_refunds(m.source_id):
        if _ours(refund, m):
            return {"id": refund["id"], "refund": refund}
    return None


def record_refund(m: Movement, result: dict) -> None:
    from marketplace.payments import refunds

    refunds.record(m, result["refund"])


def refund_refused(m: Movement, error: AppError) -> str:
    from marketplace.payments import refunds

    refunds.refused(m, error)
    return "failed"


def _held(m: Movement) -> bool:
    """A transfer to a suspended vendor waits; its amount is booked as held for the vendor."""
    from marketplace.extensions import db
    from marketplace.payments import ledger_entries
    from marketplace.vendors.models import Vendor

    if m.by_stripe or m.vendor_id is None or db.session.get(Vendor, m.vendor_id).status != "suspended":
        return False
    ledger_entries.record_share_held(m)
    return True


def _released(m: Movement) -> None:
    """A held transfer made (or given up): what was held for the vendor is released."""
    from marketplace.payments import ledger_entries

    ledger_entries.record_share_released(m)


def register_kinds() -> None:
    """Teach the movement engine the payments' kinds."""
    for name in ("transfer", "retransfer"):
        register(name, Kind(send=send_transfer, find=find_transfer, record=record_transfer, hold=_held,
                            ended=_released))
    register("transfer_reversal", Kind(send=send_reversal, find=find_reversal, record=record_reversal))
    register("fee_collection", Kind(send=send_reversal, find=find_reversal, record=record_fee_collection,
                                    prerequisite=False))
    register("refund", Kind(send=send_refund, find=find_refund, record=record_refund, refused=refund_refused))
