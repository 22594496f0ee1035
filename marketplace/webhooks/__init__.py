"""Stripe webhooks: verified, stored once, acknowledged at once, processed by jobs."""
