"""Reconciliation runs through the API, and ledger entries removed or altered behind the ORM's back."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from marketplace.extensions import db
from tests.payments_helpers import emu


def emulator_now(emulator) -> int:
    return emu(emulator, "GET", "/_emulator/clock")["now"]


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(client, admin: dict, start: int, end: int) -> dict:
    """POST a run (its jobs run inline), then GET it."""
    created = client.post("/api/admin/reconciliation-runs", json={"from": iso(start), "to": iso(end)}, headers=admin)
    assert created.status_code == 202, created.get_json()
    fetched = client.get(f"/api/admin/reconciliation-runs/{created.get_json()['id']}", headers=admin)
    assert fetched.status_code == 200
    return fetched.get_json()


def all_balance_transactions(emulator, account: str | None = None) -> list[dict]:
    """Every balance transaction of an account, read straight from the emulator."""
    out, after = [], None
    while True:
        page = emu(emulator, "GET", "/v1/balance_transactions", account=account, limit=100,
                   **({"starting_after": after} if after else {}))
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["data"][-1]["id"]


def delete_entry(bt_id: str) -> None:
    """Remove the entry recording `bt_id` with raw SQL (the ORM refuses: the ledger is append-only)."""
    with db.engine.begin() as conn:
        entry = conn.execute(sa.text("SELECT id FROM journal_entries WHERE stripe_balance_transaction_id = :b"),
                             {"b": bt_id}).scalar_one()
        conn.execute(sa.text("DELETE FROM postings WHERE entry_id = :e"), {"e": entry})
        conn.execute(sa.text("DELETE FROM journal_entries WHERE id = :e"), {"e": entry})


def inflate_entry(bt_id: str, by: int) -> None:
    """Make an entry say `by` more than Stripe moved (balance and counter postings, still balanced)."""
    with db.engine.begin() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.id, p.account, p.amount FROM postings p JOIN journal_entries e ON e.id = p.entry_id "
            "WHERE e.stripe_balance_transaction_id = :b ORDER BY p.seq"), {"b": bt_id}).all()
        balance = next(r for r in rows if r.account.endswith(":stripe_balance"))
        counter = rows[-1]
        conn.execute(sa.text("UPDATE postings SET amount = amount + :n WHERE id = :p"), {"n": by, "p": balance.id})
        conn.execute(sa.text("UPDATE postings SET amount = amount - :n WHERE id = :p"), {"n": by, "p": counter.id})
