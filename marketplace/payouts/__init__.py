"""Vendor balances from the ledger, batched payout runs and payout webhooks."""
