"""The business's figures for /metrics, read from the database at each scrape.

`BusinessCollector` is registered once on the registry /metrics reads: what it reports is
the database's shared state, the same whichever process is scraped, so it is never one of
the per-process values that multiprocess mode sums. Every read is a grouped query served
by an index (the ones below, and those the models have: webhook_events (status,
received_at), movements (status, created_at), the outbox's partial indexes), in one short
transaction under a statement timeout; a scrape while the database is down reports
`marketplace_business_metrics_up 0` and the process metrics still.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime

from flask import current_app
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Index, and_, case, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from marketplace.database import utcnow
from marketplace.extensions import db
from marketplace.movements.models import STATUSES as MOVEMENT_STATUSES
from marketplace.movements.models import Movement
from marketplace.outbox import OutboxMessage
from marketplace.payments.models import REFUND_STATUSES, Payment, Refund
from marketplace.payouts.models import PAYOUT_STATUSES, Payout
from marketplace.webhooks.models import STATUSES as WEBHOOK_STATUSES
from marketplace.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)

# The grouped sums are index-only scans on these: a scrape reads no table row for them.
Index("ix_payments_status_currency_amount", Payment.status, Payment.currency, Payment.amount)
Index("ix_refunds_status_currency_amount", Refund.status, Refund.currency, Refund.amount)
Index("ix_payouts_status_currency_amount", Payout.status, Payout.currency, Payout.amount,
      postgresql_where=text("NOT dry_run"), sqlite_where=text("NOT dry_run"))

PAYMENT_STATUSES = ("succeeded", "failed")
# A movement whose money may or may not have moved, or that an admin must finish.
ATTENTION = ("needs_attention", "unknown")
STATEMENT_TIMEOUT_MS = 5000


class BusinessCollector:
    """Payments, refunds, payouts, webhook events, the outbox and money movements, as gauges."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        started = time.perf_counter()
        try:
            families, up = read(db.session), 1
        except SQLAlchemyError as error:  # a scrape reports the failure; it never raises
            log.warning("metrics: the database could not be read (%s)", type(error).__name__)
            families, up = [], 0
        finally:
            try:
                db.session.rollback()
            except SQLAlchemyError:
                pass
        yield from families
        yield GaugeMetricFamily("marketplace_business_metrics_up",
                                "1 when the database figures were read at this scrape, 0 when it could not be read.",
                                value=up)
        yield GaugeMetricFamily("marketplace_business_metrics_duration_seconds",
                                "Time this scrape spent reading the database figures.",
                                value=time.perf_counter() - started)


def read(session: Session) -> list[GaugeMetricFamily]:
    """Every business figure, read in one transaction (the caller rolls it back)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
    now = utcnow()
    return [*payments(session), *refunds(session), *payouts(session), *webhook_events(session, now),
            *outbox(session, now), *movements(session)]


def _money(name: str, what: str) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    """A count and an amount family by currency and status."""
    count = GaugeMetricFamily(name, f"{what} by currency and status.", labels=["currency", "status"])
    amount = GaugeMetricFamily(f"{name}_amount", f"Amount of the {what.lower()}, in minor units of the currency.",
                               labels=["currency", "status"])
    return count, amount


def _fill(count, amount, rows, statuses: tuple[str, ...]) -> list[GaugeMetricFamily]:
    """Rows of (currency, status, n, sum) into the families: every supported currency and
    known status is there, 0 when nothing is (a series that appears late breaks rates)."""
    figures = {(currency, status): (n, total) for currency, status, n, total in rows}
    currencies = sorted(set(current_app.config["SUPPORTED_CURRENCIES"]) | {c for c, _ in figures})
    for currency in currencies:
        for status in sorted(set(statuses) | {s for c, s in figures if c == currency}):
            n, total = figures.get((currency, status), (0, 0))
            count.add_metric([currency, status], n)
            amount.add_metric([currency, status], int(total or 0))
    return [count, amount]


def payments(session: Session) -> list[GaugeMetricFamily]:
    """Succeeded payments, and failed ones (declined and not paid since)."""
    count, amount = _money("marketplace_payments", "Payments")
    succeeded = (select(Payment.currency, func.count(), func.sum(Payment.amount))
                 .where(Payment.status == "succeeded").group_by(Payment.currency))
    # A declined PaymentIntent is back in requires_payment_method, with the decline recorded.
    failed = (select(Payment.currency, func.count(), func.sum(Payment.amount))
              .where(Payment.status == "requires_payment_method", Payment.decline_code.is_not(None))
              .group_by(Payment.currency))
    rows = [(currency, "succeeded", n, total) for currency, n, total in session.execute(succeeded)]
    rows += [(currency, "failed", n, total) for currency, n, total in session.execute(failed)]
    return _fill(count, amount, rows, PAYMENT_STATUSES)


def refunds(session: Session) -> list[GaugeMetricFamily]:
    count, amount = _money("marketplace_refunds", "Refunds")
    stmt = (select(Refund.currency, Refund.status, func.count(), func.sum(Refund.amount))
            .group_by(Refund.status, Refund.currency))
    return _fill(count, amount, session.execute(stmt), REFUND_STATUSES)


def payouts(session: Session) -> list[GaugeMetricFamily]:
    """Payouts made (not those of dry runs)."""
    count, amount = _money("marketplace_payouts", "Payouts")
    stmt = (select(Payout.currency, Payout.status, func.count(), func.sum(Payout.amount))
            .where(~Payout.dry_run).group_by(Payout.status, Payout.currency))
    return _fill(count, amount, session.execute(stmt), PAYOUT_STATUSES)


def _seconds(later: datetime | None, earlier: datetime | None) -> float:
    if later is None or earlier is None:
        return 0.0
    return max((later - earlier).total_seconds(), 0.0)


def webhook_events(session: Session, now: datetime) -> list[GaugeMetricFamily]:
    """Events by status; how long the oldest one waiting has waited; the lag of the last done."""
    events = GaugeMetricFamily("marketplace_webhook_events",
                               "Stripe events stored, by status (received: not processed yet).", labels=["status"])
    counted = dict(session.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all())
    for status in sorted(set(WEBHOOK_STATUSES) | set(counted)):
        events.add_metric([status], counted.get(status, 0))
    oldest = session.scalar(select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status == "received"))
    last = session.execute(select(WebhookEvent.received_at, WebhookEvent.processed_at)
                           .where(WebhookEvent.status == "processed")
                           .order_by(WebhookEvent.received_at.desc()).limit(1)).first()
    return [
        events,
        GaugeMetricFamily("marketplace_webhook_oldest_unprocessed_age_seconds",
                          "Seconds since the oldest event still to process was received (0: none waits).",
                          value=_seconds(now, oldest)),
        GaugeMetricFamily("marketplace_webhook_last_processed_lag_seconds",
                          "Seconds from receipt to processing of the latest received event that is processed.",
                          value=_seconds(last.processed_at, last.received_at) if last else 0.0),
    ]


def outbox(session: Session, now: datetime) -> list[GaugeMetricFamily]:
    """Rows not handed off yet (due now, or scheduled later), and rows whose job has not finished."""
    undelivered = and_(OutboxMessage.dispatched_at.is_(None), OutboxMessage.dead_at.is_(None))
    is_due = OutboxMessage.available_at <= now
    due, scheduled, oldest_due = session.execute(
        select(func.coalesce(func.sum(case((is_due, 1), else_=0)), 0),
               func.coalesce(func.sum(case((is_due, 0), else_=1)), 0),
               func.min(case((is_due, OutboxMessage.available_at), else_=None)))
        .where(undelivered)).one()
    unfinished = session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.dispatched_at.is_not(None), OutboxMessage.done_at.is_(None), OutboxMessage.dead_at.is_(None)))
    if isinstance(oldest_due, str):  # SQLite hands a CASE's timestamp back as text
        oldest_due = datetime.fromisoformat(oldest_due)
    if oldest_due is not None and oldest_due.tzinfo is None:
        oldest_due = oldest_due.replace(tzinfo=now.tzinfo)
    return [
        GaugeMetricFamily("marketplace_outbox_undelivered", "Outbox rows due and not handed to the queue yet.",
                          value=due),
        GaugeMetricFamily("marketplace_outbox_scheduled",
                          "Outbox rows waiting for a later time (retries with backoff).", value=scheduled),
        GaugeMetricFamily("marketplace_outbox_oldest_undelivered_age_seconds",
                          "Seconds since the oldest undelivered outbox row became due (0: none).",
                          value=_seconds(now, oldest_due)),
        GaugeMetricFamily("marketplace_outbox_unfinished",
                          "Outbox rows handed to the queue whose job has not finished.", value=unfinished),
    ]


def movements(session: Session) -> list[GaugeMetricFamily]:
    """Movements by status; those needing attention (or whose outcome is unknown) with their money."""
    by_status = GaugeMetricFamily("marketplace_movements",
                                  "Money movements by status (alert on needs_attention above 0).", labels=["status"])
    counted = dict(session.execute(select(Movement.status, func.count()).group_by(Movement.status)).all())
    for status in MOVEMENT_STATUSES:
        by_status.add_metric([status], counted.get(status, 0))
    labels = ["kind", "currency", "status"]
    attention = GaugeMetricFamily("marketplace_movements_needing_attention",
                                  "Money movements an admin must finish (needs_attention) or whose outcome is not "
                                  "known yet (unknown), by kind, currency and status.", labels=labels)
    amount = GaugeMetricFamily("marketplace_movements_needing_attention_amount",
                               "Amount of those movements, in minor units of the currency.", labels=labels)
    stmt = (select(Movement.kind, Movement.currency, Movement.status, func.count(), func.sum(Movement.amount))
            .where(Movement.status.in_(ATTENTION))
            .group_by(Movement.status, Movement.kind, Movement.currency))
    for kind, currency, status, n, total in session.execute(stmt):
        attention.add_metric([kind, currency, status], n)
        amount.add_metric([kind, currency, status], int(total or 0))
    return [by_status, attention, amount]
