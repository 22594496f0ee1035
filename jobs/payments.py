"""Payment jobs: transfers after a separate charge, refunds completed, dispute recoveries."""
from jobs import job


@job
def create_transfers(payment_id: str) -> int:
    """One transfer per vendor split of a succeeded separate-charges payment."""
    from marketplace.payments import transfers

    return transfers.create_transfers(payment_id)


@job
def complete_refund(refund_id: str) -> str:
    """Finish a refund at Stripe (refund, reversals, ledger); safe to run again."""
    from marketplace.payments import refunds

    return refunds.complete_refund(refund_id)


@job
def recover_dispute(dispute_id: str) -> int:
    """Reverse the vendors' shares of a disputed order."""
    from marketplace.payments import disputes

    return disputes.recover(dispute_id)


@job
def retransfer_dispute(dispute_id: str) -> int:
    """Give the vendors back what a won dispute had recovered from them."""
    from marketplace.payments import disputes

    return disputes.retransfer(dispute_id)


@job
def retransfer_failed_refund(refund_id: str) -> int:
    """Give the vendors back what a refund that failed had taken from them."""
    from marketplace.payments import refunds

    return refunds.retransfer_failed(refund_id)
