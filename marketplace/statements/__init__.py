"""Vendors' monthly statements from the ledger: JSON, CSV and PDF."""
