"""Housekeeping jobs run on a schedule by `flask worker`."""
from jobs import job
from marketplace import outbox


@job
def relay_outbox() -> int:
    """Hand every committed, undelivered outbox row to the queue."""
    return outbox.relay()


@job
def reap_idempotency_keys() -> int:
    """Delete Idempotency-Key records older than 24 hours, and the frozen parameters of
    Stripe requests older than 48 hours."""
    from marketplace import idempotency, stripe_requests

    return idempotency.reap() + stripe_requests.reap()


@job
def expire_unpaid_orders() -> int:
    """Cancel the orders left unpaid past ORDER_PAYMENT_WINDOW_HOURS; returns how many."""
    from marketplace.orders import service

    return service.expire_unpaid_orders()


@job
def requeue_stalled_webhook_events() -> int:
    """Queue again the received webhook events whose processing stalled; returns how many."""
    from marketplace.webhooks import service

    return service.requeue_stalled()


@job
def book_unsettled_payments() -> int:
    """Book the charges of succeeded payments whose settlement was never seen; returns how many."""
    from marketplace.payments import service

    return service.book_unsettled()


@job
def sweep_subscriptions() -> int:
    """Adopt subscriptions whose creation's answer was lost; book latest invoices left unbooked."""
    from marketplace.subscriptions import service

    return service.sweep()


@job
def follow_vendor_subscriptions(vendor_id: str) -> int:
    """A vendor suspended or reinstated: its subscriptions' renewals held on the platform, or
    paid to it again; returns how many were changed."""
    from marketplace.subscriptions import service

    return service.follow_vendor(vendor_id)
