"""Stripe resources; importing this package registers every route."""
from . import (accounts, balance, charges, checkout, controls, customers,  # noqa: F401
               disputes, events, fees, invoices, payment_intents, payment_methods, payouts,
               products, refunds, setup_intents, subscriptions, transfers)
