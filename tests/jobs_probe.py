"""A job used by the tests of the outbox and the worker: it records its calls."""
from jobs import job

CALLS: list[str] = []
FAIL_TIMES: dict[str, int] = {}


@job
def record(value: str) -> str:
    """Append `value` to CALLS; fail first if FAIL_TIMES says so."""
    if FAIL_TIMES.get(value, 0) > 0:
        FAIL_TIMES[value] -= 1
        raise RuntimeError(f"planned failure for {value}")
    CALLS.append(value)
    return value
