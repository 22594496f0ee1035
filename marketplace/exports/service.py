"""Accounting exports read from the ledger and the payouts, a chunk at a time.

Journal (`journal_csv`): one row per posting of every journal entry that occurred in
[start, end), ordered by (occurred_at, entry id, posting seq). A posting's amount is split
into `debit` and `credit`, non-negative integer minor units, exactly one of them non-zero
(the ledger's sign: debit positive, credit negative), each with a `_decimal` twin in the
currency's exponent; per entry and currency the debits equal the credits. Beside the entry's
own references (`local_type`/`local_id`, its Stripe object, balance transaction and account)
the row names the local objects it comes from: the order (from an order, a split, a refund, a
dispute or a movement), the payment (and its PaymentIntent and charge), the refund, the
dispute and the payout, where the entry leads to one.

Payouts (`payouts_csv`): one row per payout created in [start, end) (dry runs' would-be payouts
left out), ordered by (created_at, id), with the balance transactions of its creation and, for
a failed or canceled payout, of the money coming back, as the ledger recorded them.

Each chunk is the next `size` rows by keyset, starting where the last chunk ended (never
OFFSET), as reconciliation/journal.py reads the ledger, so memory holds one chunk whatever the
window. On PostgreSQL all chunks of one export read one snapshot (`read_snapshot`): an entry
committed while the file is being sent is in none of them rather than in some.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby

from flask import current_app
from sqlalchemy import String, and_, any_, bindparam, case, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import ScalarSelect

from marketplace.database import isoformat
from marketplace.exports import writer
from marketplace.extensions import db
from marketplace.ledger import accounts as a
from marketplace.ledger.models import JournalEntry, Posting
from marketplace.movements.models import Movement
from marketplace.orders.models import OrderSplit
from marketplace.payments.models import Dispute, Payment, Refund
from marketplace.payouts.models import Payout

CHUNK = 2000  # journal entries (or payouts) a query when the app has no EXPORT_CHUNK_SIZE setting

JOURNAL_COLUMNS = (
    "entry_id", "occurred_at", "kind", "description", "posting_id", "posting_seq", "account", "account_name",
    "vendor_id", "currency", "debit", "credit", "debit_decimal", "credit_decimal", "local_type", "local_id",
    "order_id", "payment_id", "refund_id", "dispute_id", "payout_id", "stripe_object_id",
    "stripe_balance_transaction_id", "stripe_account", "stripe_payment_intent_id", "stripe_charge_id",
)
PAYOUT_COLUMNS = (
    "payout_id", "run_id", "vendor_id", "stripe_account", "stripe_payout_id", "stripe_balance_transaction_id",
    "stripe_failure_balance_transaction_id", "currency", "amount", "amount_decimal", "status", "failure_code",
    "created_at", "paid_at", "updated_at", "period_start", "period_end", "gross_sales", "platform_fees", "refunds",
    "disputes", "net_amount", "order_count",
)
_READ_ONLY_SNAPSHOT = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def chunk_size() -> int:
    """Rows (journal entries, payouts) read per query."""
    return max(1, int(current_app.config.get("EXPORT_CHUNK_SIZE", CHUNK)))


def journal_csv(start: datetime, end: datetime) -> Iterator[str]:
    """The journal of [start, end) as CSV text, a piece per chunk (nothing is read before it is iterated)."""
    return writer.stream(JOURNAL_COLUMNS, journal_rows(start, end, chunk_size()))


def payouts_csv(start: datetime, end: datetime) -> Iterator[str]:
    """The payouts created in [start, end) as CSV text, a piece per chunk."""
    return writer.stream(PAYOUT_COLUMNS, payout_rows(start, end, chunk_size()))


@contextmanager
def read_snapshot() -> Iterator[None]:
    """One read-only transaction over the whole export, ended however the export ends (a client
    gone mid-file closes the generator: the rollback still runs). On PostgreSQL it is REPEATABLE
    READ, so every chunk sees the snapshot of the first; on SQLite (development) each chunk
    reads what is committed when it is read."""
    db.session.rollback()  # whatever the request read before (the bearer check) ends here
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_READ_ONLY_SNAPSHOT)
    try:
        yield
    finally:
        db.session.rollback()


def journal_rows(start: datetime, end: datetime, size: int) -> Iterator[list[tuple]]:
    """The CSV rows of the postings of entries occurred in [start, end), oldest first, a list
    per `size` entries: (occurred_at, entry id) is the keyset, then each entry's postings by seq.

    A chunk's `size` entries are picked by the keyset, whose `occurred_at >= last` is what
    starts the index scan (ix_journal_entries_occurred_at, ties sorted by id incrementally)
    where the previous chunk ended (the OR alone would only filter), then joined to their
    references, then given their postings. The LIMIT counts entries, so an entry's postings
    are never split between chunks.
    """
    with read_snapshot():
        connection = db.session.connection()
        read = _read_looked_up if connection.dialect.name == "postgresql" else _read_joined
        lower = [JournalEntry.occurred_at >= start]
        while True:
            entries = read(connection, _entries(lower, end, size))
            if entries:
                yield [row for entry, postings in entries for row in _journal_cells(entry, postings)]
            if len(entries) < size:
                return
            last_at, last_id = entries[-1][0][1], entries[-1][0][0]
            lower = [JournalEntry.occurred_at >= last_at,
                     or_(JournalEntry.occurred_at > last_at, JournalEntry.id > last_id)]


_POSTING = (Posting.id, Posting.seq, Posting.account, Posting.currency, Posting.amount)
_POSTING_WIDTH = len(_POSTING)


def _entries(lower: list, end: datetime, size: int) -> Select:
    """The chunk's entries, oldest first, each with the local objects it leads to: every
    reference an index lookup by primary key (or payments' unique order id)."""
    chunk = (
        select(JournalEntry.id, JournalEntry.occurred_at, JournalEntry.kind, JournalEntry.description,
               JournalEntry.local_type, JournalEntry.local_id, JournalEntry.stripe_object_id,
               JournalEntry.stripe_balance_transaction_id, JournalEntry.stripe_account)
        .where(*lower, JournalEntry.occurred_at < end)
        .order_by(JournalEntry.occurred_at, JournalEntry.id)
        .limit(size)
        .subquery()
    )
    c = chunk.c

    def local(kind: str):
        return case((c.local_type == kind, c.local_id))

    order_id = func.coalesce(local("order"), OrderSplit.order_id, Refund.order_id, Dispute.order_id,
                             Movement.order_id)
    return (
        select(*c, order_id, func.coalesce(Refund.payment_id, Dispute.payment_id, Payment.id),
               func.coalesce(local("refund"), Movement.refund_id),
               func.coalesce(local("dispute"), Movement.dispute_id),
               func.coalesce(local("payout"), Movement.payout_id),
               Payment.payment_intent_id, Payment.stripe_charge_id)
        .select_from(chunk)
        .outerjoin(OrderSplit, and_(c.local_type == "order_split", OrderSplit.id == c.local_id))
        .outerjoin(Refund, and_(c.local_type == "refund", Refund.id == c.local_id))
        .outerjoin(Dispute, and_(c.local_type == "dispute", Dispute.id == c.local_id))
        .outerjoin(Movement, and_(c.local_type == "movement", Movement.id == c.local_id))
        .outerjoin(Payment, Payment.order_id == order_id)
        .order_by(c.occurred_at, c.id)
    )


_ENTRY_WIDTH = 16  # the entry's own 9 columns and its 7 references


def _read_looked_up(connection: Connection, entries: Select) -> list[tuple[Row, list[Row]]]:
    """PostgreSQL: the entries, then their postings by entry id, the ids bound as one array
    (`= ANY`: an index lookup each on ix_postings_entry_id). Joined into the entries' query
    they would let the planner hash-join a scan of every posting, once per chunk; a LATERAL
    subquery is flattened into that same join unless it aggregates, and aggregating the
    postings into arrays (reconciliation/journal.py sums them) took the server twice as long."""
    rows = connection.execute(entries).all()
    if not rows:
        return []
    ids = bindparam("entry_ids", [row[0] for row in rows], type_=ARRAY(String))
    stmt = select(*_POSTING, Posting.entry_id).where(Posting.entry_id == any_(ids)).order_by(Posting.entry_id,
                                                                                              Posting.seq)
    postings: dict[str, list[Row]] = {}
    for posting in connection.execute(stmt).all():
        postings.setdefault(posting[_POSTING_WIDTH], []).append(posting)
    return [(row, postings.get(row[0], [])) for row in rows]


def _read_joined(connection: Connection, entries: Select) -> list[tuple[Sequence, list[Sequence]]]:
    """SQLite (no hash join, and no limit on a chunk's size from bound parameters): the
    postings joined, a row each, by seq."""
    stmt = entries.add_columns(*_POSTING).outerjoin(Posting, Posting.entry_id == entries.selected_columns[0])
    rows = connection.execute(stmt.order_by(Posting.seq)).all()
    grouped = []
    for _, same_entry in groupby(rows, key=lambda row: row[0]):
        lines = list(same_entry)
        grouped.append((lines[0][:_ENTRY_WIDTH], [line[_ENTRY_WIDTH:] for line in lines if line[_ENTRY_WIDTH]]))
    return grouped


def _journal_cells(entry: Sequence, postings: list[Sequence]) -> list[tuple]:
    """An entry's rows: its own cells (formatted once) around each posting's."""
    (entry_id, occurred_at, kind, description, local_type, local_id, stripe_object_id, bt_id, stripe_account,
     order_id, payment_id, refund_id, dispute_id, payout_id, payment_intent_id, charge_id) = entry
    head = (entry_id, isoformat(occurred_at), kind, writer.text(description))
    tail = (local_type, local_id, order_id, payment_id, refund_id, dispute_id, payout_id, stripe_object_id, bt_id,
            stripe_account, payment_intent_id, charge_id)
    return [head + _posting_cells(*posting[:_POSTING_WIDTH]) + tail for posting in postings]


def _posting_cells(posting_id: str, seq: int, account: str, currency: str, amount: int) -> tuple:
    vendor_id = a.vendor_id_of(account) if account.startswith("vendor:") else ""
    cells = (posting_id, seq, account, account.rpartition(":")[2], vendor_id, currency)
    if amount > 0:
        return cells + (amount, 0, writer.decimal(amount, currency), writer.decimal(0, currency))
    return cells + (0, -amount, writer.decimal(0, currency), writer.decimal(-amount, currency))


def payout_rows(start: datetime, end: datetime, size: int) -> Iterator[list[tuple]]:
    """The CSV rows of the payouts created in [start, end) (not dry runs'), oldest first, a list
    per `size` payouts; keyset (created_at, id)."""
    with read_snapshot():
        connection = db.session.connection()
        lower = [Payout.created_at >= start]
        while True:
            stmt = (
                select(*_PAYOUT, _payout_bt((a.PAYOUT,)), _payout_bt((a.PAYOUT_FAILURE, a.PAYOUT_CANCEL)))
                .where(*lower, Payout.created_at < end, Payout.dry_run.is_(False))
                .order_by(Payout.created_at, Payout.id)
                .limit(size)
            )
            rows = connection.execute(stmt).all()
            if rows:
                yield [_payout_cells(row) for row in rows]
            if len(rows) < size:
                return
            last_at, last_id = rows[-1][1], rows[-1][0]
            lower = [Payout.created_at >= last_at, or_(Payout.created_at > last_at, Payout.id > last_id)]


_PAYOUT = (Payout.id, Payout.created_at, Payout.run_id, Payout.vendor_id, Payout.stripe_account,
           Payout.stripe_payout_id, Payout.currency, Payout.amount, Payout.status, Payout.failure_code,
           Payout.paid_at, Payout.updated_at, Payout.period_start, Payout.period_end, Payout.gross_sales,
           Payout.platform_fees, Payout.refunds, Payout.disputes, Payout.net_amount, Payout.order_count)


def _payout_bt(kinds: tuple[str, ...]) -> ScalarSelect:
    """The balance transaction the ledger recorded for the payout's po_ in one of `kinds` (an
    index lookup on ix_journal_entries_stripe_object_id)."""
    return (select(JournalEntry.stripe_balance_transaction_id)
            .where(JournalEntry.stripe_object_id == Payout.stripe_payout_id, JournalEntry.kind.in_(kinds))
            .order_by(JournalEntry.occurred_at, JournalEntry.id).limit(1).scalar_subquery())


def _payout_cells(r: Row) -> tuple:
    (payout_id, created_at, run_id, vendor_id, stripe_account, stripe_payout_id, currency, amount, status,
     failure_code, paid_at, updated_at, period_start, period_end, gross_sales, platform_fees, refunds, disputes,
     net_amount, order_count, bt_id, failure_bt_id) = r
    return (payout_id, run_id, vendor_id, stripe_account, stripe_payout_id, bt_id, failure_bt_id, currency, amount,
            writer.decimal(amount, currency), status, writer.text(failure_code), isoformat(created_at),
            isoformat(paid_at), isoformat(updated_at), isoformat(period_start), isoformat(period_end), gross_sales,
            platform_fees, refunds, disputes, net_amount, order_count)
