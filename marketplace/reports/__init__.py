"""Admin reports computed from the ledger."""
