"""Movement jobs: drive one movement soon after its commit; sweep every due one."""
from jobs import job


@job
def drive_movement(movement_id: str) -> str:
    """Try one movement if it is due (a hint: the sweep drives it anyway)."""
    from marketplace.movements import engine

    return engine.drive(movement_id)


@job
def sweep_movements() -> int:
    """Drive every movement whose attempt is due; returns how many."""
    from marketplace.movements import engine

    return engine.sweep()
