"""Vendors' recurring products: Stripe Subscriptions on the platform, each paid invoice an order."""
