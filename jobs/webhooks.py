"""Webhook processing job: one stored Stripe event at a time."""
from jobs import job


@job
def process_event_job(event_row_id: str) -> str:
    """Process a stored Stripe event; idempotent (a finished event is left alone)."""
    from marketplace.webhooks import service

    return service.process_event(event_row_id)
