"""Benchmark of the ledger's posting path: journal entries/s through `ledger.post` beside bare psycopg.

On PostgreSQL (a database of its own, created, migrated with the app's migrations, dropped),
BENCH_ENTRIES journal entries are recorded by each of two paths, per transaction size, in
BENCH_ROUNDS rounds of BENCH_ENTRIES / BENCH_ROUNDS entries that alternate the paths:
  app  - marketplace.ledger.service.post() as the app's services call it: one app (built as
         production builds it), one app context, each transaction an `@atomic` phase; the
         entries are those of payments/ledger_entries.py and payouts/ledger_entries.py
         (kinds and accounts of ledger/accounts.py, Line objects, the same keyword arguments):
         per 10 entries 4 charges-and-payments of 3 postings, 6 entries of 2 (transfer,
         platform fee, application fee, refund, payout), 2.4 postings per entry;
  bare - the same rows (journal_entries + postings, same columns, same values shape: the
         app's ids, keys, kinds, accounts, amounts, timestamps) on one plain psycopg 3
         connection, no pool, no ORM: per transaction one pipeline (the entries'
         INSERT executemany, the postings' INSERT executemany, COMMIT: one round trip), the
         floor: the least a writer of these rows at this commit granularity does here.
Transaction sizes: 1 entry per transaction (as a webhook job books one balance transaction)
and BENCH_BATCH entries per transaction (default 100, a backfill or a run). Both write into
the same tables, with every constraint and index the migrations create (unique entry_key,
the postings' foreign key and CHECK, the journal indexes); they are emptied before each
measurement, and after each the rows written are checked: the count and a digest of every
column except the random ids and created_at must be those the specification gives, the same
for app and bare. Rates are the rounds' medians, the ratio the median of the rounds' ratios
(app and bare of one round ran back to back: other load on the machine skews both alike).

Prints one JSON line per transaction size (entries_per_s, bare_entries_per_s, ratio = their
per-round ratios' median, target_ratio 0.5, met) and a summary line.

    .venv/bin/python bench/ledger.py    # BENCH_PG=postgresql://postgres@127.0.0.1:5432
                                        # BENCH_ENTRIES=3000 BENCH_BATCH=100 BENCH_ROUNDS=3
"""
from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "3000"))  # per path and transaction size
BATCH = int(os.environ.get("BENCH_BATCH", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BUDGET = int(os.environ.get("BENCH_BUDGET", "600"))  # seconds; the run stops by itself
TARGET = 0.5
WARMUP = 200
BASE = 1_780_000_000  # `created` of the first balance transaction
VENDORS = 50

ENTRY_SQL = ("INSERT INTO journal_entries (id, entry_key, kind, description, occurred_at, created_at,"
             " stripe_object_id, stripe_balance_transaction_id, stripe_account, local_type, local_id)"
             " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
POSTING_SQL = "INSERT INTO postings (id, entry_id, seq, account, currency, amount) VALUES (%s, %s, %s, %s, %s, %s)"
# Every column but the random ids and created_at, in a stable order: equal for equal rows. An
# internal entry's occurred_at is the moment it was posted (post() defaults it to now): checked
# apart, against the measurement's start.
DIGEST_SQL = """
    SELECT count(DISTINCT e.id), count(p.id), coalesce(sum(p.amount), 0), md5(string_agg(concat_ws('|',
           e.entry_key, e.kind, e.description, CASE WHEN e.stripe_balance_transaction_id IS NOT NULL
           THEN e.occurred_at END, e.stripe_object_id, e.stripe_balance_transaction_id,
           e.stripe_account, e.local_type, e.local_id, p.seq, p.account, p.currency, p.amount),
           ',' ORDER BY e.entry_key, p.seq)),
           bool_and(e.stripe_balance_transaction_id IS NOT NULL OR e.occurred_at >= %s)
    FROM journal_entries e JOIN postings p ON p.entry_id = e.id
"""


def spec(i: int, run: str) -> dict:
    """Entry i of a run, as the app's ledger_entries modules build it: post()'s arguments.

    A sale books a charge (3 postings), a transfer and its vendor payment (2 and 3), the
    platform's fee (an internal platform_fee entry on separate charges, 2; or an application
    fee, 2); then a refund or a payout (2).
    """
    from marketplace.ledger import accounts as a

    slot, sale = i % 10, i // 10
    vendor = f"ven_{sale % VENDORS:026d}"
    acct = f"acct_{sale % VENDORS:016d}"
    order, split = f"ord_{run}{sale:020d}", f"spl_{run}{sale:020d}"
    amount = 1000 + (i * 37) % 9000
    fee = amount * 29 // 1000 + 30
    platform_fee = amount // 10
    created = BASE + i
    txn = f"txn_{run}{i:020d}"

    def bt(kind, lines, source, owner_account, local_type, local_id, description=""):
        return {"kind": kind, "lines": lines, "key": txn, "created": created, "description": description,
                "stripe_object_id": source, "stripe_balance_transaction_id": txn, "stripe_account": owner_account,
                "local_type": local_type, "local_id": local_id}

    if slot in (0, 4):  # record_charge: net on the platform, Stripe's fee, the shopper's payment
        return bt(a.CHARGE, [(a.PLATFORM_BALANCE, amount - fee), (a.STRIPE_FEES, fee), (a.SHOPPER_CLEARING, -amount)],
                  f"ch_{run}{i:020d}", None, "order", order)
    if slot in (1, 5):  # record_transfer
        return bt(a.TRANSFER, [(a.PLATFORM_BALANCE, -amount), (a.vendor(vendor, a.TRANSFER_CLEARING), amount)],
                  f"tr_{run}{i:020d}", None, "order_split", split)
    if slot in (2, 6):  # record_vendor_payment (destination charge: the application fee is taken from it)
        return bt(a.VENDOR_PAYMENT, [(a.vendor(vendor), amount - platform_fee),
                                     (a.vendor(vendor, a.PLATFORM_FEES), platform_fee),
                                     (a.vendor(vendor, a.TRANSFER_CLEARING), -amount)],
                  f"py_{run}{i:020d}", acct, "order_split", split)
    if slot == 3:  # record_platform_fee: internal, no balance transaction, occurred now
        return {"kind": a.PLATFORM_FEE, "lines": [(a.FEE_REVENUE, -platform_fee),
                                                  (a.vendor(vendor, a.PLATFORM_FEES), platform_fee)],
                "key": f"platform-fee-{split}", "created": None, "description": "", "stripe_object_id": None,
                "stripe_balance_transaction_id": None, "stripe_account": None, "local_type": "order_split",
                "local_id": split}
    if slot == 7:  # record_application_fee
        return bt(a.APPLICATION_FEE, [(a.PLATFORM_BALANCE, platform_fee), (a.FEE_REVENUE, -platform_fee)],
                  f"fee_{run}{i:020d}", None, "order", order)
    if slot == 8:  # record_refund
        return bt(a.REFUND, [(a.PLATFORM_BALANCE, -amount // 2), (a.REFUNDS, amount // 2)],
                  f"re_{run}{i:020d}", None, "refund", f"ref_{run}{sale:020d}")
    # payouts/ledger_entries._post
    return bt(a.PAYOUT, [(a.vendor(vendor), -amount), (a.vendor(vendor, a.PAID_OUT), amount)],
              f"po_{run}{i:020d}", acct, "payout", f"pay_{run}{sale:020d}", "STRIPE PAYOUT")


def specs(n: int, run: str) -> list[dict]:
    return [spec(i, run) for i in range(n)]


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _when(created: int | None) -> datetime | None:
    return datetime.fromtimestamp(created, timezone.utc) if created else None


# --- the app: ledger.post() in @atomic phases ---------------------------------------------

def app_phase():
    """One transaction of the app, as a service writes it: an @atomic function posting entries."""
    from marketplace.ledger import service as ledger
    from marketplace.ledger.service import Line
    from marketplace.transaction import atomic

    @atomic
    def book(batch: list[dict]) -> None:
        for s in batch:
            ledger.post(
                s["kind"], [Line(account, "usd", amount) for account, amount in s["lines"]], key=s["key"],
                occurred_at=_when(s["created"]), description=s["description"],
                stripe_object_id=s["stripe_object_id"], stripe_balance_transaction_id=s["stripe_balance_transaction_id"],
                stripe_account=s["stripe_account"], local_type=s["local_type"], local_id=s["local_id"],
            )

    return book


def run_app(batches: list[list[dict]]) -> float:
    book = app_phase()
    started = time.perf_counter()
    for batch in batches:
        book(batch)
    return time.perf_counter() - started


# --- the floor: the same rows on a bare psycopg connection --------------------------------

def run_bare(conn: psycopg.Connection, batches: list[list[dict]]) -> float:
    from marketplace.database import new_id, utcnow

    started = time.perf_counter()
    for batch in batches:
        entries, postings = [], []
        for s in batch:
            entry_id, now = new_id("je"), utcnow()
            entries.append((entry_id, s["key"], s["kind"], s["description"][:300], _when(s["created"]) or now, now,
                            s["stripe_object_id"], s["stripe_balance_transaction_id"], s["stripe_account"],
                            s["local_type"], s["local_id"]))
            postings.extend((new_id("pst"), entry_id, seq, account, "usd", amount)
                            for seq, (account, amount) in enumerate(s["lines"]))
        with conn.pipeline(), conn.cursor() as cur:
            cur.executemany(ENTRY_SQL, entries)
            cur.executemany(POSTING_SQL, postings)
            conn.commit()
    return time.perf_counter() - started


# --- the run -----------------------------------------------------------------------------

def empty(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE postings, journal_entries")


def digest(url: str, items: list[dict], mode: str, since: datetime) -> tuple:
    """Check the rows written: the expected count, balanced, and a digest equal across modes."""
    with psycopg.connect(url, autocommit=True) as conn:
        entries, postings, total, md5, recent = conn.execute(DIGEST_SQL, (since,)).fetchone()
    expected = (len(items), sum(len(s["lines"]) for s in items), 0, True)
    assert (entries, postings, int(total), recent) == expected, (mode, entries, postings, total, recent, expected)
    return entries, postings, md5


def measure(app, url: str, bare: psycopg.Connection, items: list[dict], batch: int, mode: str) -> float:
    from marketplace.extensions import db

    empty(url)
    if mode == "app":
        with app.app_context():
            seconds = run_app(chunks(items, batch))
            db.session.remove()
    else:
        seconds = run_bare(bare, chunks(items, batch))
    return seconds


def main() -> None:
    logging.disable(logging.WARNING)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("budget exceeded")))
    signal.alarm(BUDGET)
    load_before = round(os.getloadavg()[0], 2)  # other processes on the machine skew both figures
    name = f"bench_ledger_{os.getpid()}"
    url = f"{PG}/{name}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = None
    try:
        from config import load_config
        from marketplace import create_app
        from marketplace.extensions import db

        app = create_app(load_config({
            "APP_ENV": "production", "SECRET_KEY": "bench-" + "s" * 40, "DATABASE_URL": url,
            "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": "whsec_bench", "LOG_LEVEL": "WARNING",
        }))
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
        per_round = max(1, ENTRIES // ROUNDS)
        items = specs(per_round, "b")  # the same entries (and keys) each round: the tables are emptied first
        lines = []
        with psycopg.connect(url) as bare:
            for batch in (1, BATCH):
                for mode in ("app", "bare"):  # warm both paths: statement caches, pool, server's pages
                    measure(app, url, bare, specs(WARMUP, "w"), batch, mode)
                rounds: dict[str, list[float]] = {"app": [], "bare": []}
                digests = set()
                for _ in range(ROUNDS):
                    for mode in ("app", "bare"):
                        since = datetime.now(timezone.utc)
                        seconds = measure(app, url, bare, items, batch, mode)
                        digests.add(digest(url, items, mode, since))
                        rounds[mode].append(per_round / seconds)
                assert len(digests) == 1, f"app and bare rows differ: {digests}"
                ratios = [round(a / b, 3) for a, b in zip(rounds["app"], rounds["bare"])]
                ratio = statistics.median(ratios)
                line = {
                    "bench": "ledger", "entries": per_round * ROUNDS, "entries_per_transaction": batch,
                    "postings_per_entry": round(sum(len(s["lines"]) for s in items) / per_round, 2), "rounds": ROUNDS,
                    "entries_per_s": round(statistics.median(rounds["app"]), 1),
                    "bare_entries_per_s": round(statistics.median(rounds["bare"]), 1),
                    "round_entries_per_s": [round(r) for r in rounds["app"]],
                    "round_bare_entries_per_s": [round(r) for r in rounds["bare"]],
                    "round_ratios": ratios, "ratio": ratio, "target_ratio": TARGET, "met": ratio >= TARGET,
                    "rows_identical": True,
                }
                lines.append(line)
                print(json.dumps(line), flush=True)
        print(json.dumps({
            "bench": "ledger", "summary": True, "cpus": os.cpu_count(), "load_average_before": load_before,
            "ratios": {str(line["entries_per_transaction"]): line["ratio"] for line in lines},
            "target_ratio": TARGET, "met": all(line["met"] for line in lines),
        }), flush=True)
    finally:
        signal.alarm(0)
        if app is not None:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
