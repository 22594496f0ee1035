"""RQ queues on REDIS_URL, or inline execution when it is unset."""
from __future__ import annotations

import importlib
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry

QUEUE_NAMES = ("default",)
JOB_TIMEOUT_SECONDS = 600


def is_inline() -> bool:
    """True when REDIS_URL is unset: jobs run in-process right after their commit."""
    return not current_app.config.get("REDIS_URL")


def get_redis() -> Redis:
    """One Redis client per app (a connection pool inside)."""
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5
        )
    return ext["redis"]


def get_queue(name: str = "default") -> Queue:
    """The RQ queue `name` on this app's Redis."""
    return Queue(name, connection=get_redis(), default_timeout=JOB_TIMEOUT_SECONDS)


def enqueue(job: str, args: list, kwargs: dict, *, job_id: str, queue: str = "default") -> None:
    """Put a job on RQ with a deterministic id; retried by RQ with backoff on failure."""
    get_queue(queue).enqueue(
        job,
        args=tuple(args),
        kwargs=kwargs,
        job_id=job_id,
        retry=Retry(max=5, interval=[5, 30, 120, 600, 1800]),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
    )


def resolve(job: str) -> Any:
    """Import a job function from its dotted path."""
    module_name, _, attr = job.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def run_inline(job: str, args: list, kwargs: dict) -> Any:
    """Run a job now, in this process and app context."""
    return resolve(job)(*args, **kwargs)
