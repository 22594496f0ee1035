"""The streaming merge of balance transactions and ledger rows, pure (no database, no Stripe)."""
from marketplace.reconciliation.matching import LedgerRow, Matcher


def bt(id_, created, amount=1000, fee=0, source=None, currency="usd"):
    return {"id": id_, "created": created, "amount": amount, "fee": fee, "currency": currency,
            "source": source or f"src_{id_}", "type": "charge"}


def row(id_, occurred, amount=1000, fee=0, source=None, account=None, currency="usd"):
    return LedgerRow(f"je_{id_}", id_, source or f"src_{id_}", occurred, account, currency, amount, fee)


def run(bts, rows, listed=(), lookup_rows=()):
    lookups = []
    by_id = {r.bt_id: r for r in lookup_rows}

    def lookup(ids):
        lookups.append(ids)
        return {i: by_id[i] for i in ids if i in by_id}

    matcher = Matcher(None, lookup, lambda r: r.bt_id in listed)
    findings = list(matcher.run(bts, rows))
    return matcher.tally, {(f.kind, f.bt_id) for f in findings}, lookups


def test_everything_matched_needs_no_lookup():
    bts = [bt("c", 30), bt("b", 20), bt("b2", 20), bt("a", 10)]
    rows = [row("c", 30), row("b2", 20), row("b", 20), row("a", 10)]
    tally, found, lookups = run(bts, rows)
    assert (tally.matched, found, lookups) == (4, set(), [])


def test_each_kind():
    bts = [bt("new", 40), bt("fee", 30, amount=1000, fee=59), bt("a", 10)]
    rows = [row("ghost", 35), row("fee", 30, amount=1000, fee=60), row("a", 10, currency="eur")]
    tally, found, _ = run(bts, rows)
    assert found == {("missing_in_ledger", "new"), ("missing_in_stripe", "ghost"),
                     ("amount_mismatch", "fee"), ("amount_mismatch", "a")}
    assert tally.counts() == {"matched": 0, "missing_in_ledger": 1, "missing_in_stripe": 1, "amount_mismatch": 2}


def test_an_entry_whose_time_drifted_is_matched_by_id_either_way():
    # Recorded earlier than Stripe's created: met by the lookup first, skipped later.
    tally, found, _ = run([bt("x", 50)], [row("x", 20)], lookup_rows=[row("x", 20)])
    assert (tally.matched, found) == (1, set())
    # Recorded later: the entry is reached first, Stripe confirms it is listed, the lookup matches it.
    tally, found, _ = run([bt("y", 20)], [row("y", 50)], listed={"y"}, lookup_rows=[row("y", 50)])
    assert (tally.matched, found) == (1, set())


def test_memory_is_one_second_at_a_time():
    def bts():
        for second in range(10_000, 0, -1):
            yield bt(f"t{second}", second)

    def rows():
        for second in range(10_000, 0, -1):
            yield row(f"t{second}", second)

    tally, found, lookups = run(bts(), rows())
    assert (tally.matched, tally.transactions, found, lookups) == (10_000, 10_000, set(), [])
