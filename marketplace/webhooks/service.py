"""Receive, store once, process by job, retry, replay: the life of a Stripe event here."""
from __future__ import annotations

import functools
import logging
import re
from datetime import datetime, timedelta, timezone

from flask import current_app, g
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from marketplace import audit, input_guard, outbox, queue, stripe_gateway, tasks
from marketplace.database import UTCDateTime, new_id, utcnow
from marketplace.errors import NotFound
from marketplace.extensions import db
from marketplace.pagination import paginate
from marketplace.stripe_gateway import InvalidWebhook
from marketplace.webhooks import handlers, later
from marketplace.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)

FINAL = ("processed", "ignored", "failed")
_SECRET_PATTERNS = re.compile(
    r"(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9_]+|whsec_[A-Za-z0-9_]+|Bearer\s+\S+|://[^\s/@:]+:[^\s/@]+@"
)


# The endpoints `flask stripe webhook-endpoints` keeps: the platform's own events, and the
# connected accounts' (Stripe sends a Connect event only to an endpoint made with connect).
ENDPOINT_ROLES = ("platform", "connect")


def subscribe(url: str) -> list[dict]:
    """Make (or bring in line) the platform's and the Connect webhook endpoint at `url`:
    subscribed to the event types the app handles and nothing else (Stripe delivers only
    those, so no request, row or job is spent on the rest), at the API version the app
    speaks. One dict per endpoint: {role, id, created, secret} (the secret only when it was
    created now: Stripe shows it once)."""
    events = sorted(handlers.HANDLERS)
    existing = {(ep.get("metadata") or {}).get("marketplace_role"): ep
                for ep in stripe_gateway.list_webhook_endpoints() if ep.get("url") == url}
    out = []
    for role in ENDPOINT_ROLES:
        endpoint = existing.get(role)
        if endpoint is not None:
            endpoint = stripe_gateway.update_webhook_endpoint(
                endpoint["id"], {"enabled_events": events, "disabled": False})
            out.append({"role": role, "id": endpoint["id"], "created": False, "secret": None})
            continue
        endpoint = stripe_gateway.create_webhook_endpoint({
            "url": url, "enabled_events": events, "connect": role == "connect",
            "api_version": stripe_gateway.API_VERSION, "metadata": {"marketplace_role": role},
            "description": f"marketplace ({role} events)"})
        out.append({"role": role, "id": endpoint["id"], "created": True, "secret": endpoint.get("secret")})
    return out


def webhook_secrets() -> list[str]:
    """The endpoint secret, then the Connect endpoint's when one is set."""
    config = current_app.config
    return [s for s in (config["STRIPE_WEBHOOK_SECRET"], config.get("STRIPE_CONNECT_WEBHOOK_SECRET")) if s]


def receive(raw_body: bytes, signature: str | None) -> bool:
    """Verify and store a delivery; returns True when the event was already stored."""
    event = stripe_gateway.verify_webhook(raw_body, signature, webhook_secrets())
    _check_shape(event)
    return not store(event, raw_body.decode("utf-8"), source="webhook")


# The envelope fields stored in their own columns: (required, longest value the column holds).
_STORED_FIELDS = {
    name: (required, WebhookEvent.__table__.c[column].type.length)
    for name, column, required in (("id", "stripe_event_id", True), ("type", "type", True),
                                   ("account", "account", False), ("api_version", "api_version", False))
}


def _check_shape(event: dict) -> None:
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidWebhook("The event has no id or type.", code="invalid_payload")
    for name, (required, longest) in _STORED_FIELDS.items():
        value = event.get(name)
        if value is None and not required:
            continue
        if (not isinstance(value, str) or not value or len(value) > longest
                or not input_guard.is_storable_text(value)):
            raise InvalidWebhook(f"The event's {name} is not a usable identifier.", code="invalid_payload")
    live_key = current_app.config["STRIPE_SECRET_KEY"].startswith(("sk_live_", "rk_live_"))
    if bool(event.get("livemode")) != live_key:
        mode = "live" if event.get("livemode") else "test"
        raise InvalidWebhook(f"A {mode} mode event does not belong to this endpoint.", code="invalid_payload")


def store(event: dict, raw_body: str, source: str) -> bool:
    """Insert the event and its processing job in one transaction; False if already stored.

    The unique Stripe event id decides between racing deliveries (ON CONFLICT DO NOTHING:
    one row, no error). On PostgreSQL with a queue, the event, its outbox row and the
    NOTIFY that wakes the workers' relay are one statement and one commit: that is all an
    acknowledgement waits for. Otherwise the job is added to the outbox as usual and handed
    off (or run inline) after the request's commit.
    """
    values = {
        "id": new_id("whe"), "stripe_event_id": event["id"], "type": event["type"],
        "account": event.get("account"), "livemode": bool(event.get("livemode")),
        "api_version": event.get("api_version"), "stripe_created_at": _timestamp(event.get("created")),
        "source": source, "status": "received", "attempts": 0, "raw_body": raw_body, "received_at": utcnow(),
    }
    dialect = db.engine.dialect.name
    if dialect == "postgresql" and not queue.is_inline():
        statement, params = outbox.add_statement(tasks.PROCESS_EVENT, values["id"], when=_INSERT_EVENT_SQL)
        return _acknowledge(_driver_sql(statement.text), {**params, **values})
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (insert(WebhookEvent.__table__).values(values)
                 .on_conflict_do_nothing(index_elements=["stripe_event_id"]).returning(WebhookEvent.id))
    stored = db.session.execute(statement).first() is not None
    if stored:
        outbox.add(tasks.PROCESS_EVENT, values["id"])
    db.session.commit()
    return stored


def _acknowledge(sql: str, params: dict) -> bool:
    """Run the acknowledgement's one statement on a pooled connection's psycopg connection,
    in autocommit (one statement is its own transaction: no BEGIN or COMMIT round trip),
    with no engine execution around it (on this hot path SQLAlchemy's own work per
    statement cost more than the database's). True when the event was new."""
    import psycopg

    pooled = db.engine.raw_connection()  # checked out as any other: pinged when it was idle
    try:
        connection = pooled.driver_connection
        connection.autocommit = True
        try:
            return connection.execute(sql, params).fetchone() is not None
        finally:
            if not connection.closed:
                connection.autocommit = False
    except psycopg.OperationalError:
        pooled.invalidate()  # the link is gone: not handed out again
        raise
    finally:
        pooled.close()


@functools.cache
def _driver_sql(text_sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s` (the text statement's, built once)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", text_sql.replace("%", "%%"))


# The acknowledgement's one statement (with the outbox's part): text SQL, compiled once.
_INSERT_EVENT_SQL = (
    "INSERT INTO webhook_events (id, stripe_event_id, type, account, livemode, api_version,"
    " stripe_created_at, source, status, attempts, raw_body, received_at)"
    " VALUES (:id, :stripe_event_id, :type, :account, :livemode, :api_version,"
    " :stripe_created_at, :source, :status, :attempts, :raw_body, :received_at)"
    " ON CONFLICT (stripe_event_id) DO NOTHING RETURNING id"
)


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=timezone.utc) if isinstance(value, int) else None


# One attempt holds its event this long, more than a job may run (RQ stops it at
# JOB_TIMEOUT_SECONDS): a second job for the same event (a replay, a requeue, a duplicate
# enqueue) waits its turn instead of running the handler alongside.
LEASE = timedelta(seconds=queue.JOB_TIMEOUT_SECONDS + 300)
# A received event whose attempt is this overdue lost its job (Redis lost its queue, a
# worker died mid-run) and is queued again by requeue_stalled().
STALLED_AFTER = timedelta(minutes=10)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 10 s, 50 s, about 4 min, 21 min, 1 h 44 min, then 6 h."""
    return timedelta(seconds=min(10 * 5 ** (attempts - 1), 6 * 3600))


def process_event(row_id: str) -> str:
    """Run the event's handler once; record the outcome. Returns the event's status.

    The attempt is claimed first (attempts + 1 and the lease, committed), so it counts even
    if the process dies half way, and no other run handles the event meanwhile. A failure
    schedules the next attempt in the outbox with backoff until WEBHOOK_MAX_ATTEMPTS, then
    the event is `failed`; the retry lives in the database, not in Redis.
    """
    now = utcnow()
    claimed = db.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == row_id, WebhookEvent.status == "received",
               or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < now))
        .values(attempts=WebhookEvent.attempts + 1, locked_until=now + LEASE)
        .returning(WebhookEvent.raw_body, WebhookEvent.received_at, WebhookEvent.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    if claimed is None:  # finished, gone, or being handled by another run right now
        row = db.session.get(WebhookEvent, row_id)
        status = row.status if row is not None else "missing"
        db.session.rollback()
        return status
    event = input_guard.loads(claimed.raw_body)  # bounded when received: cannot fail here
    # Only its first look, by a worker, may be put off (later.py).
    g.event_received_at = claimed.received_at if claimed.attempts == 1 and not queue.is_inline() else None
    try:
        handlers.dispatch(event)
    except handlers.Ignored as reason:
        return _finish(row_id, "ignored", reason=str(reason))
    except later.Later as put_off:
        return _put_off(row_id, put_off)
    except Exception as error:
        db.session.rollback()
        return _record_failure(row_id, error)
    return _finish(row_id, "processed")


def _put_off(row_id: str, put_off: later.Later) -> str:
    """Handled again `put_off.delay` from now; the attempt it took is given back."""
    db.session.rollback()
    row = db.session.get(WebhookEvent, row_id)
    row.attempts, row.locked_until = row.attempts - 1, None
    row.next_attempt_at = outbox.add_later(put_off.delay, tasks.PROCESS_EVENT, row.id).available_at
    db.session.commit()
    log.info("webhook event %s (%s) put off: %s", row.stripe_event_id, row.type, put_off)
    return row.status


def _finish(row_id: str, status: str, reason: str | None = None) -> str:
    db.session.rollback()  # whatever a handler left uncommitted is not ours to commit
    row = db.session.get(WebhookEvent, row_id)
    row.status, row.reason, row.last_error, row.processed_at = status, reason, None, utcnow()
    row.next_attempt_at = row.locked_until = None
    db.session.commit()
    return status


def _record_failure(row_id: str, error: Exception) -> str:
    row = db.session.get(WebhookEvent, row_id)
    row.last_error = safe_error(error)
    row.locked_until = None
    log.warning("webhook event %s (%s) attempt %d failed: %s", row.stripe_event_id, row.type,
                row.attempts, row.last_error)
    if row.attempts >= current_app.config["WEBHOOK_MAX_ATTEMPTS"]:
        row.status, row.processed_at, row.next_attempt_at = "failed", utcnow(), None
    else:
        row.next_attempt_at = outbox.add_later(retry_delay(row.attempts), tasks.PROCESS_EVENT, row.id).available_at
    status = row.status
    db.session.commit()
    return status


def requeue_stalled(now: datetime | None = None, limit: int = 500) -> int:
    """Queue again the received events whose attempt is STALLED_AFTER overdue; returns how many.

    Normally every received event has its job queued or its retry waiting in the outbox.
    This is the net for a job that vanished after its hand-off: Redis restarted without
    persistence, or a worker was killed mid-run (its lease runs out first). The extra job
    is harmless if the original turns up after all: the claim lets one run only.
    """
    now = now or utcnow()
    due = func.coalesce(WebhookEvent.next_attempt_at, WebhookEvent.received_at, type_=UTCDateTime())
    stalled = list(db.session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.status == "received", due < now - STALLED_AFTER,
               or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < now))
        .order_by(due, WebhookEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    for row in stalled:
        row.next_attempt_at = now
        outbox.add(tasks.PROCESS_EVENT, row.id)
    db.session.commit()
    if stalled:
        log.warning("requeued %d webhook events whose processing had stalled", len(stalled))
    return len(stalled)


def safe_error(error: Exception) -> str:
    """`Type: message`, with anything shaped like a key, secret, token or password removed."""
    message = getattr(error, "message", None) or str(error)
    code = getattr(error, "code", None)
    text = f"{type(error).__name__}{f' ({code})' if isinstance(code, str) else ''}: {message}"
    return _SECRET_PATTERNS.sub("[redacted]", text)[:1000]


def list_events(page: int, per_page: int, status: str | None = None, type: str | None = None) -> dict:
    """Stored events, newest first (admin)."""
    stmt = select(WebhookEvent).order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
    if status:
        stmt = stmt.where(WebhookEvent.status == status)
    if type:
        stmt = stmt.where(WebhookEvent.type == type)
    return paginate(stmt, page, per_page).as_dict()


def replay(row_id: str) -> WebhookEvent:
    """Queue the event for processing again, with a fresh attempt budget (admin)."""
    row = db.session.get(WebhookEvent, row_id)
    if row is None:
        raise NotFound("No such webhook event.")
    row.status, row.attempts, row.processed_at, row.next_attempt_at = "received", 0, None, None
    outbox.add(tasks.PROCESS_EVENT, row.id)
    audit.record("webhook_event.replayed", "webhook_event", row.id)
    db.session.commit()
    return row

