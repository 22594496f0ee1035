"""The movement engine: every Stripe call that moves money after the charge, driven from the
database to an end.

A movement is planned (`plan`) in the same transaction as the decision that needs it; an
outbox row asks a job to `drive` it soon after the commit, and the worker's `sweep` drives
every movement whose attempt is due, so a lost job, a flushed Redis or a killed worker
only delays it. `drive` claims the row with a lease (one conditional UPDATE: two workers
never send it together), commits, calls Stripe with no transaction open, then records the
outcome once:

- an answer: the kind records it (ledger, domain rows) and the movement `succeeded`;
- timeouts, connection errors, 5xx, 429 and 409 `idempotency_key_in_use` leave the outcome
  **unknown**: before the next attempt the object is looked up at Stripe (by the movement
  id in its metadata), and only if it does not exist is the same request sent again under
  the same key. Nothing rests on Stripe still knowing the key (it keeps keys 24 hours):
  a retry days later, or after Stripe forgot the key early, cannot make the object twice;
- a refusal that may pass later (a balance too low) is tried again later as a new request
  (a new key: Stripe keeps the refusal under the old one);
- any other refusal is definite: the kind decides what it means (`failed`, or
  `needs_attention` for money that must move whatever happens).

After `MOVEMENT_MAX_ATTEMPTS` attempts a movement is `needs_attention`: listed for admins,
counted in /metrics, tried again by `retry`. Nothing is abandoned silently.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from marketplace import audit, outbox, stripe_gateway, tasks
from marketplace.database import new_id, utcnow
from marketplace.errors import AppError, Conflict, NotFound, ServiceUnavailable
from marketplace.extensions import db
from marketplace.movements.models import LIVE, OPEN, REVERSAL_KINDS, Movement
from marketplace.pagination import paginate

log = logging.getLogger(__name__)

# Refusals that may pass later: the balance drawn on is short for now.
RETRY_LATER = frozenset({"balance_insufficient", "insufficient_funds"})
# A movement's row is locked FOR NO KEY UPDATE: a movement planned meanwhile that draws on
# it (a reversal of a transfer being recorded: its foreign key takes FOR KEY SHARE) is not
# held up, so a business transaction that locked the order first never deadlocks with a
# driver that locked the movement and then needs the order to record it.
ROW_LOCK = {"key_share": True}
UNKNOWN = (ServiceUnavailable, stripe_gateway.RateLimited, stripe_gateway.StripeInFlight)


@dataclass(frozen=True)
class Kind:
    """What the engine needs of a kind of movement.

    `send(m)` makes the Stripe object (the movement's key) and `find(m)` looks for one made
    under an earlier attempt (by the movement id in its metadata); both return what
    `record(m, result)` needs, read from Stripe with no transaction open. `record` writes
    the ledger and the domain rows in the engine's transaction. `refused(m, error)` says
    what a definite refusal means and returns the movement's final status. `hold(m)`, when
    given, keeps a movement waiting while it is true (a suspended vendor's transfers);
    `ended(m)`, when given, runs in the transaction that makes it succeeded or failed.
    `prerequisite` is False for a kind no movement ever waits for (nothing to wake at its end).
    """

    send: Callable[[Movement], dict]
    find: Callable[[Movement], dict | None]
    record: Callable[[Movement, dict], None]
    refused: Callable[[Movement, AppError], str] = field(default=lambda m, error: "needs_attention")
    hold: Callable[[Movement], bool] | None = None
    ended: Callable[[Movement], None] | None = None
    prerequisite: bool = True


KINDS: dict[str, Kind] = {}


def register(name: str, kind: Kind) -> None:
    """Make the engine able to drive movements of `name`."""
    KINDS[name] = kind


def plan(kind: str, amount: int, currency: str, due_in: timedelta | None = None, **fields) -> Movement:
    """A movement to make, in the caller's transaction; a job drives it after the commit.

    With `due_in`, no job is asked for: the movement is due that much later (the sweep drives
    it then), for one whose object Stripe makes on its own (a destination charge's transfer,
    once the charge settles) and whose caller wakes it when Stripe shows it."""
    movement = Movement(id=new_id("mov"), kind=kind, amount=amount, currency=currency,
                        status="planned", next_attempt_at=utcnow() + (due_in or timedelta()), **fields)
    db.session.add(movement)
    if due_in is None:
        outbox.add(tasks.DRIVE_MOVEMENT, movement.id)
    return movement


def plan_claimed(kind: str, amount: int, currency: str, **fields) -> Movement:
    """A movement planned and claimed by its caller at once, in the caller's transaction:
    the row is written `sent` with this attempt's lease, as `drive` would claim it. Once the
    caller has committed, `attempt(movement)` sends it (no job, no claim of its own: one
    write less for a caller that sends at once, such as a payout run). Should the caller
    die in between, the lease runs out and the sweep drives it as any other (its outcome
    unknown: looked for at Stripe first). Returns the movement, detached as `_claim` makes it."""
    now = utcnow()
    movement = Movement(id=new_id("mov"), kind=kind, amount=amount, currency=currency, status="sent",
                        attempts=1, key_generation=0, next_attempt_at=now, locked_until=now + _lease(),
                        first_sent_at=now, created_at=now, updated_at=now, **fields)
    db.session.add(movement)
    db.session.flush()
    db.session.expunge(movement)  # read by the kind with no transaction open
    movement.previous_attempt_at, movement.claimed_at, movement.outcome_unknown = now, now, False
    return movement


def _lease() -> timedelta:
    """How long one attempt holds its movement: longer than the Stripe call may take."""
    return timedelta(seconds=current_app.config["STRIPE_TIMEOUT_SECONDS"]
                     * (current_app.config["STRIPE_MAX_NETWORK_RETRIES"] + 1) + 60)


def drive(movement_id: str, look_only: bool = False, found: dict | None = None) -> str:
    """Try the movement once if it is due (and nobody else is); returns its status. With
    `look_only`, the object is looked for at Stripe and recorded if found, never sent. With
    `found`, the object is what Stripe just showed (read with no transaction open, in the
    shape the kind's `find` returns): it is recorded as found, with no call to Stripe."""
    movement = _claim(movement_id)
    if movement is None:
        return status_of(movement_id)
    return attempt(movement, look_only, found)


def attempt(movement: Movement, look_only: bool = False, found: dict | None = None) -> str:
    """This attempt of a claimed movement (`_claim`, `plan_claimed`): look, send, record once."""
    kind = KINDS[movement.kind]
    canceled = bool(movement.params.get("cancel"))
    looked = movement.by_stripe or canceled or look_only or movement.outcome_unknown
    try:  # a lookup that fails, however definitely, says nothing of what an earlier send made
        result = found if found is not None else kind.find(movement) if looked else None
    except UNKNOWN as error:
        return _unknown(movement, f"{error.code}: {error.message}")
    except AppError as error:
        return _unknown(movement, f"looking it up failed: {error.code}: {error.message}")
    try:  # Stripe's side only: an error here is Stripe's answer to the send
        if result is None and canceled:
            return _canceled(movement)
        if result is None and not (movement.by_stripe or look_only):
            result = kind.send(movement)
    except UNKNOWN as error:
        return _unknown(movement, f"{error.code}: {error.message}")
    except AppError as error:
        return _refused(movement, kind, error)
    if result is None:  # Stripe has not made it yet (a charge not settled, an event ahead of its object)
        return _unknown(movement, "not made by Stripe yet" if movement.by_stripe else "not found at Stripe yet")
    try:
        return _succeeded(movement, kind, result)
    except Exception as error:  # made, but not recorded (a bug, a database error): tried again
        db.session.rollback()  # under the same key, which answers with the same object
        log.exception("movement %s (%s): recording %s failed", movement.id, movement.kind, result.get("id"))
        _unknown(movement, f"made as {result.get('id')} but not recorded: {type(error).__name__}")
        raise


# A movement no longer wanted is only failed once no earlier attempt can still be under way.
SETTLED_AFTER = timedelta(minutes=2)


def _canceled(claimed: Movement) -> str:
    """Not wanted any more and not made at Stripe: failed, unless an attempt may be in flight."""
    earlier = claimed.first_sent_at < claimed.claimed_at
    if earlier and claimed.claimed_at - claimed.previous_attempt_at < SETTLED_AFTER:
        return _unknown(claimed, "canceled: waiting for an earlier attempt to settle")
    row = _own(claimed)
    if row is None:
        return status_of(claimed.id)
    _finish(row, "failed", "canceled before it was made")
    db.session.commit()
    return "failed"


def _claim(movement_id: str) -> Movement | None:
    """Lease a due movement whose prerequisites succeeded; None when it is not to be sent now.

    The movement returned is detached and carries `claimed_at`, `previous_attempt_at` and
    `outcome_unknown` (an earlier attempt may have made it; not columns); its `attempts` is
    this attempt's number, the claim's token (`_own`)."""
    movement = db.session.get(Movement, movement_id)
    if movement is None or movement.status not in OPEN:
        db.session.rollback()
        return None
    waiting = _waiting_for(movement)
    if waiting:
        db.session.commit()
        return None
    now = utcnow()
    lease = _lease()
    previous, unknown = movement.updated_at, movement.status in ("unknown", "sent")
    claimed = db.session.execute(
        update(Movement)
        .where(Movement.id == movement_id,
               Movement.status == movement.status, Movement.attempts == movement.attempts,  # as read
               or_(and_(Movement.status.in_(("planned", "unknown")), Movement.next_attempt_at <= now),
                   and_(Movement.status == "sent", Movement.locked_until < now)))
        .values(status="sent", attempts=Movement.attempts + 1, locked_until=now + lease,
                first_sent_at=func.coalesce(Movement.first_sent_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return None
    db.session.refresh(movement)
    movement.previous_attempt_at = previous  # not columns: when this row last changed, and now
    movement.claimed_at = now
    movement.outcome_unknown = unknown
    db.session.expunge(movement)  # read by the kind with no transaction open
    db.session.commit()
    return movement


def _own(claimed: Movement) -> Movement | None:
    """The row, locked, if this claim still holds it: nobody took it over after the lease
    ran out (its attempt is still ours). Otherwise None: the new holder records the outcome
    (under the same key it gets the same object), and a late answer here is dropped."""
    row = db.session.get(Movement, claimed.id, with_for_update=ROW_LOCK, populate_existing=True)
    if row.status == "sent" and row.attempts == claimed.attempts:
        return row
    log.warning("movement %s attempt %d lost its lease (now %s, attempt %d): its outcome is not recorded here",
                claimed.id, claimed.attempts, row.status, row.attempts)
    db.session.rollback()
    return None


# A movement waiting for another is looked at again this late (the other's end wakes it at once).
WAIT_RECHECK = timedelta(minutes=15)


def _waiting_for(movement: Movement) -> bool:
    """True while a prerequisite has not succeeded (then the movement waits, or fails with it)."""
    for prerequisite_id in (movement.after_id, movement.source_movement_id):
        if prerequisite_id is None:
            continue
        with db.session.no_autoflush:  # read as committed, waiting for a driver recording it now
            prerequisite = db.session.get(Movement, prerequisite_id, with_for_update={"read": True},
                                          populate_existing=True)
        if prerequisite.status == "succeeded":
            if prerequisite_id == movement.source_movement_id and movement.source_id is None:
                movement.source_id = prerequisite.stripe_id
            continue
        if prerequisite.status == "failed":
            _finish(movement, "failed", f"not made: {prerequisite.kind} {prerequisite.id} failed")
        else:  # never before the prerequisite, and never holding the sweep's front row
            movement.next_attempt_at = max(prerequisite.next_attempt_at, utcnow() + WAIT_RECHECK)
        return True
    hold = KINDS[movement.kind].hold
    if hold is not None and hold(movement):
        movement.next_attempt_at = utcnow() + timedelta(hours=1)  # and again at once when released
        movement.last_error = "held: the vendor is suspended"
        return True
    return False


def shown(stripe_object: dict) -> str | None:
    """Stripe shows an object made for a movement (an event carrying it, the movement's id in
    its metadata): the movement looks it up and records it now. That includes a movement
    whose answers were all lost (`needs_attention` after its attempts): what Stripe shows is
    what was made, so it is recorded and nobody is asked to retry it. Nothing is sent here.
    Returns the movement's status, or None when the object is no movement's."""
    movement_id = (stripe_object.get("metadata") or {}).get("movement_id")
    movement = db.session.get(Movement, movement_id, with_for_update=ROW_LOCK) if movement_id else None
    if movement is None:
        db.session.rollback()
        return None
    status = movement.status
    if status == "failed":
        log.error("movement %s (%s) is failed, but Stripe shows %s made for it", movement.id, movement.kind,
                  stripe_object.get("id"))
    if status not in ("planned", "unknown", "needs_attention") or movement.first_sent_at is None:
        db.session.commit()  # recorded, under way, or never sent (then not what Stripe shows)
        return status
    movement.status, movement.next_attempt_at = "unknown", utcnow()  # its attempts stay counted
    db.session.commit()
    return drive(movement_id, look_only=True)


def status_of(movement_id: str) -> str:
    """A movement's status now (`missing` when there is no such movement)."""
    status = db.session.scalar(select(Movement.status).where(Movement.id == movement_id))
    db.session.rollback()
    return status or "missing"


def _succeeded(claimed: Movement, kind: Kind, result: dict) -> str:
    movement = _own(claimed)
    if movement is None:
        return status_of(claimed.id)
    kind.record(movement, result)
    movement.stripe_id = movement.stripe_id or result["id"]
    _finish(movement, "succeeded", None)
    db.session.commit()
    return "succeeded"


def _wake_dependents(movement_id: str) -> None:
    """What waited for this movement is due now (to go, or to fail with it), and asked for."""
    for dependent in db.session.scalars(select(Movement).where(
            or_(Movement.after_id == movement_id, Movement.source_movement_id == movement_id),
            Movement.status.in_(("planned", "unknown")))):
        dependent.next_attempt_at = utcnow()
        outbox.add(tasks.DRIVE_MOVEMENT, dependent.id)


def _finish(movement: Movement, status: str, error: str | None) -> None:
    movement.status = status
    movement.last_error = error[:1000] if error else None
    movement.locked_until = None
    if status in ("succeeded", "failed"):
        movement.finished_at = utcnow()
        kind = KINDS[movement.kind]
        if kind.ended is not None:
            kind.ended(movement)
        if kind.prerequisite:
            _wake_dependents(movement.id)


def _unknown(claimed: Movement, error: str) -> str:
    """Try the same request again later (or ask for attention once attempts ran out)."""
    movement = _own(claimed)
    if movement is None:
        return status_of(claimed.id)
    if movement.attempts >= current_app.config["MOVEMENT_MAX_ATTEMPTS"]:
        _finish(movement, "needs_attention", f"outcome unknown after {movement.attempts} attempts: {error}")
        log.error("movement %s (%s) needs attention: %s", movement.id, movement.kind, error)
    else:
        _finish(movement, "unknown", error)
        movement.next_attempt_at = utcnow() + backoff(movement.attempts)
    db.session.commit()
    return movement.status


def _refused(claimed: Movement, kind: Kind, error: AppError) -> str:
    """A definite answer that nothing was made. A refusal that may pass later is tried again
    as a new request; one that says we are misconfigured (authentication, permissions: no
    Stripe error code) needs an admin; any other is the kind's to judge."""
    code = (error.details or {}).get("stripe_code") or error.code
    message = f"{code}: {error.message}"
    movement = _own(claimed)
    if movement is None:
        return status_of(claimed.id)
    if code in RETRY_LATER and movement.attempts < current_app.config["MOVEMENT_MAX_ATTEMPTS"]:
        movement.key_generation += 1  # nothing was made: the next attempt is a new request
        _finish(movement, "planned", message)
        movement.next_attempt_at = utcnow() + backoff(movement.attempts)
    else:
        ours = code in RETRY_LATER or code == stripe_gateway.StripeFailure.code
        status = "needs_attention" if ours else kind.refused(movement, error)
        _finish(movement, status, message)
        if status == "needs_attention":
            log.error("movement %s (%s) needs attention: %s", movement.id, movement.kind, message)
    db.session.commit()
    return movement.status


def backoff(attempts: int) -> timedelta:
    """10 s, 30 s, 90 s, ~4.5 min, ~13.5 min, ~40 min, 2 h, then 6 h."""
    return timedelta(seconds=min(10 * 3 ** max(attempts - 1, 0), 6 * 3600))


def drive_now(movement_ids: list[str], found: dict | None = None) -> None:
    """Drive these movements in this process, in order (best effort: the sweep is the net);
    `found` as for drive()."""
    for movement_id in movement_ids:
        try:
            drive(movement_id, found=found)
        except Exception:  # noqa: BLE001 - the row stays due; its error is the sweep's to meet
            db.session.rollback()
            log.exception("driving movement %s here failed; the worker will", movement_id)


def wake(movement_ids: list[str], found: dict | None = None) -> None:
    """Make these unfinished movements due now and drive them (what they waited for exists);
    `found` as for drive()."""
    if movement_ids:
        db.session.execute(update(Movement).where(Movement.id.in_(movement_ids),
                                                  Movement.status.in_(("planned", "unknown")))
                           .values(next_attempt_at=utcnow()).execution_options(synchronize_session=False))
        db.session.commit()
    drive_now(movement_ids, found=found)


def handle_balance_available(balance: dict, account: str | None = None) -> int:
    """`balance.available`: funds arrived on the platform (or a vendor's account); movements
    refused for lack of them are tried again now. Returns how many."""
    waiting = select(Movement.id).where(Movement.status == "planned", Movement.key_generation > 0,
                                        Movement.last_error.like("balance_insufficient%"))
    if account is None:  # the platform's balance: transfers and retransfers draw on it
        waiting = waiting.where(Movement.kind.in_(("transfer", "retransfer", "refund")))
    else:  # a vendor's balance: reversals of its transfers and its payouts draw on it
        waiting = waiting.where(or_(and_(Movement.kind.in_(REVERSAL_KINDS), Movement.destination == account),
                                    and_(Movement.kind == "payout", Movement.stripe_account == account)))
    ids = list(db.session.scalars(waiting))
    db.session.commit()
    wake(ids)
    return len(ids)


def sweep(limit: int = 200) -> int:
    """Drive every movement whose attempt is due (the worker's safety net); how many."""
    now = utcnow()
    due = list(db.session.scalars(
        select(Movement.id)
        .where(or_(and_(Movement.status.in_(("planned", "unknown")), Movement.next_attempt_at <= now),
                   and_(Movement.status == "sent", Movement.locked_until < now)))
        .order_by(Movement.next_attempt_at, Movement.id).limit(limit)))
    db.session.commit()
    drive_now(due)
    return len(due)


def cancel(movement: Movement) -> None:
    """Not wanted any more, in the caller's transaction: the next attempt only looks for it at
    Stripe (recorded if an earlier attempt made it) and otherwise ends it failed. One that
    needs attention (refused, say) is taken up again for that; an ended one is left as it is."""
    if movement.status not in OPEN + ("needs_attention",):
        return
    movement.params = {**movement.params, "cancel": True}
    if movement.status == "needs_attention":
        movement.status = "unknown" if movement.first_sent_at else "planned"
        movement.next_attempt_at = utcnow()


def retry(movement_id: str) -> Movement:
    """An admin's new try of a movement that needs attention: due now, attempts counted anew."""
    movement = db.session.get(Movement, movement_id, with_for_update=ROW_LOCK)
    if movement is None:
        db.session.rollback()
        raise NotFound("No such movement.", code="movement_not_found")
    if movement.status != "needs_attention":
        db.session.rollback()
        raise Conflict("Only a movement that needs attention can be retried.", code="movement_not_retryable",
                       details={"status": movement.status})
    movement.status = "unknown" if movement.first_sent_at else "planned"
    movement.attempts, movement.next_attempt_at = 0, utcnow()
    audit.record("movement.retried", "movement", movement.id, amount=movement.amount, currency=movement.currency)
    outbox.add(tasks.DRIVE_MOVEMENT, movement.id)
    db.session.commit()
    return movement


def list_movements(page: int = 1, per_page: int = 20, status: str | None = None, kind: str | None = None) -> dict:
    """Movements, newest first; filters by status and kind."""
    stmt = select(Movement)
    if status:
        stmt = stmt.where(Movement.status == status)
    if kind:
        stmt = stmt.where(Movement.kind == kind)
    return paginate(stmt.order_by(Movement.created_at.desc(), Movement.id.desc()), page, per_page).as_dict()


def counts() -> dict[str, int]:
    """How many movements are in each status (for /metrics)."""
    rows = db.session.execute(select(Movement.status, func.count()).group_by(Movement.status)).all()
    db.session.rollback()
    return {status: int(n) for status, n in rows}


def needing_attention(limit: int = 100) -> list[Movement]:
    """The movements that need an admin, oldest first."""
    return list(db.session.scalars(select(Movement).where(Movement.status == "needs_attention")
                                   .order_by(Movement.created_at).limit(limit)))


def live(**links) -> list[Movement]:
    """The movements (planned, under way, needing attention or succeeded) matching `links`."""
    stmt = select(Movement).where(Movement.status.in_(LIVE))
    for name, value in links.items():
        stmt = stmt.where(getattr(Movement, name) == value)
    return list(db.session.scalars(stmt.order_by(Movement.created_at, Movement.id)))
