"""Money movements: every Stripe call that moves money after the charge (see engine.py)."""
