"""Matching one account's balance transactions against its ledger entries, in one streaming pass.

Both sides arrive newest first: Stripe lists balance transactions by `created`, the ledger
is read in chunks by `occurred_at` (which `record_bt` sets to the transaction's `created`).
They are merged one second at a time, so memory holds one second's transactions and one
chunk of entries, never the window. What does not meet its partner in its own second is
settled by id rather than by time, so an entry whose time drifted is never misreported:
- a transaction with no entry in its second is looked up in the ledger by id
  (found: compared; not found: `missing_in_ledger`);
- an entry with no transaction in its second is looked up on Stripe by id (listed in this
  account and window: its transaction is still to come and is met by the lookup above;
  otherwise `missing_in_stripe`).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Callable, Iterable, Iterator


@dataclass(slots=True)
class LedgerRow:
    """What the ledger says about one balance transaction (see ledger_entries.py)."""

    entry_id: str
    bt_id: str
    source_id: str | None
    occurred: int  # unix seconds
    account: str | None
    currency: str
    amount: int
    fee: int


@dataclass(slots=True)
class Finding:
    """One discrepancy: expected is the ledger's side, actual is Stripe's (0 when absent)."""

    kind: str
    bt_id: str
    source_id: str | None
    currency: str | None
    expected_amount: int = 0
    actual_amount: int = 0
    expected_fee: int = 0
    actual_fee: int = 0
    entry_id: str | None = None
    detail: str = ""


@dataclass
class Tally:
    matched: int = 0
    missing_in_ledger: int = 0
    missing_in_stripe: int = 0
    amount_mismatch: int = 0
    transactions: int = 0

    def counts(self) -> dict[str, int]:
        return {"matched": self.matched, "missing_in_ledger": self.missing_in_ledger,
                "missing_in_stripe": self.missing_in_stripe, "amount_mismatch": self.amount_mismatch}


Lookup = Callable[[list[str]], dict[str, LedgerRow]]
ListedOnStripe = Callable[[LedgerRow], bool]


class Matcher:
    """Merge-joins one account's transactions (newest first) with its ledger rows (newest first)."""

    def __init__(self, account: str | None, lookup: Lookup, listed_on_stripe: ListedOnStripe):
        self.account = account
        self.lookup = lookup
        self.listed_on_stripe = listed_on_stripe
        self.tally = Tally()
        # Entries already met through a lookup, still ahead in the ledger stream.
        self._met_early: set[str] = set()

    def run(self, bts: Iterable[dict], rows: Iterable[LedgerRow]) -> Iterator[Finding]:
        """Yield every discrepancy; the tally counts matches and discrepancies alike."""
        ledger = iter(rows)
        ahead = next(ledger, None)
        for second, group in groupby(bts, key=lambda bt: int(bt["created"])):
            here: dict[str, LedgerRow] = {}
            while ahead is not None and ahead.occurred >= second:
                if ahead.occurred > second:
                    yield from self._entry_alone(ahead)
                else:
                    here[ahead.bt_id] = ahead
                ahead = next(ledger, None)
            alone = []
            for bt in group:
                self.tally.transactions += 1
                row = here.pop(bt["id"], None)
                if row is None:
                    alone.append(bt)
                else:
                    yield from self._compare(bt, row)
            for row in here.values():
                yield from self._entry_alone(row)
            if alone:
                yield from self._transactions_alone(alone, second)
        while ahead is not None:
            yield from self._entry_alone(ahead)
            ahead = next(ledger, None)

    def _compare(self, bt: dict, row: LedgerRow) -> Iterator[Finding]:
        fee = int(bt.get("fee") or 0)
        differences = [
            name for name, ours, theirs in (
                ("amount", row.amount, int(bt["amount"])), ("fee", row.fee, fee),
                ("currency", row.currency, bt["currency"]), ("source", row.source_id, bt.get("source")),
                ("account", row.account, self.account),
            ) if ours != theirs
        ]
        if not differences:
            self.tally.matched += 1
            return
        self.tally.amount_mismatch += 1
        yield Finding("amount_mismatch", bt["id"], bt.get("source"), bt["currency"], row.amount,
                      int(bt["amount"]), row.fee, fee, row.entry_id, "differs: " + ", ".join(differences))

    def _transactions_alone(self, bts: list[dict], second: int) -> Iterator[Finding]:
        found = self.lookup([bt["id"] for bt in bts])
        for bt in bts:
            row = found.get(bt["id"])
            if row is None:
                self.tally.missing_in_ledger += 1
                yield Finding("missing_in_ledger", bt["id"], bt.get("source"), bt["currency"], 0,
                              int(bt["amount"]), 0, int(bt.get("fee") or 0),
                              detail=f"{bt.get('type', '')} not recorded")
                continue
            if row.account == self.account and row.occurred < second:
                self._met_early.add(row.bt_id)
            yield from self._compare(bt, row)

    def _entry_alone(self, row: LedgerRow) -> Iterator[Finding]:
        if row.bt_id in self._met_early:
            self._met_early.discard(row.bt_id)
            return
        if self.listed_on_stripe(row):
            return  # its transaction comes later in the stream; met there by id
        self.tally.missing_in_stripe += 1
        yield Finding("missing_in_stripe", row.bt_id, row.source_id, row.currency, row.amount, 0,
                      row.fee, 0, row.entry_id, "not listed by Stripe in this account and window")
