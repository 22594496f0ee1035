"""Reconciliation: the ledger checked against Stripe's balance transactions, one job per account."""
