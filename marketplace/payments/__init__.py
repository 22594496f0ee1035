"""Payments: PaymentIntents, transfers, refunds and disputes on Stripe Connect."""
