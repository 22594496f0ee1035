"""Accounting exports: the journal and the payouts as streamed CSV, for admins."""
