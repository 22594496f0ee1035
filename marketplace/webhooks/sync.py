"""Backfill from /v1/events: store and process only the events no delivery brought us."""
from __future__ import annotations

import json
from datetime import datetime
from itertools import islice
from typing import Callable, Iterable, Iterator

from sqlalchemy import select

from marketplace import outbox, stripe_gateway
from marketplace.extensions import db
from marketplace.vendors.models import Vendor
from marketplace.webhooks import service
from marketplace.webhooks.models import WebhookEvent

BATCH = 100


def connected_accounts() -> list[str]:
    """Every vendor's connected account id."""
    stmt = select(Vendor.stripe_account_id).where(Vendor.stripe_account_id.is_not(None))
    return sorted(db.session.scalars(stmt))


def sync_events(since: datetime, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Store and queue every event since `since` not stored yet, platform first, then each vendor."""
    totals = {"accounts": 0, "seen": 0, "stored": 0}
    for account in [None, *connected_accounts()]:
        seen, stored = sync_account(int(since.timestamp()), account)
        totals["accounts"] += 1
        totals["seen"] += seen
        totals["stored"] += stored
        progress(f"{account or 'platform'}: {seen} event(s) listed, {stored} missed and queued")
    return totals


def sync_account(since: int, account: str | None) -> tuple[int, int]:
    """(events listed, events stored) for one account's events since `since` (unix)."""
    seen = stored = 0
    for batch in _batches(stripe_gateway.list_events(since, account)):
        seen += len(batch)
        known = _stored_ids([e["id"] for e in batch])
        for event in batch:
            if event["id"] in known:
                continue
            if account and not event.get("account"):
                event["account"] = account
            raw = json.dumps(event)
            stored += service.store(event, raw, source="sync")
            outbox.relay_if_committed()
    return seen, stored


def _stored_ids(ids: list[str]) -> set[str]:
    stmt = select(WebhookEvent.stripe_event_id).where(WebhookEvent.stripe_event_id.in_(ids))
    found = set(db.session.scalars(stmt))
    db.session.rollback()
    return found


def _batches(events: Iterable[dict]) -> Iterator[list[dict]]:
    it = iter(events)
    while batch := list(islice(it, BATCH)):
        yield batch
