"""Stripe resources; importing this package registers every route."""
from . import (accounts, balance, charges, controls, disputes, events, fees,  # noqa: F401
               payment_intents, payouts, refunds, transfers)
