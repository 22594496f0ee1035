"""Jobs are named in one registry: a wrong name fails at start-up, never at run time."""
import pytest

from marketplace import outbox, tasks


def test_every_registered_job_imports():
    tasks.check()
    assert tasks.DRIVE_MOVEMENT in tasks.NAMES and len(tasks.NAMES) >= 10


def test_a_wrong_job_name_fails_the_check(monkeypatch):
    monkeypatch.setattr(tasks, "NAMES", tasks.NAMES | {"jobs.movements.drive_movment"})
    with pytest.raises(AttributeError):
        tasks.check()


def test_the_outbox_takes_only_registered_names():
    with pytest.raises(ValueError):
        outbox.job_path("jobs.movements.drive_movment")
    assert outbox.job_path(tasks.DRIVE_MOVEMENT) == "jobs.movements.drive_movement"


def test_services_do_not_import_jobs():
    """jobs/ imports the services; the other way round would be a cycle."""
    import ast
    import pathlib

    offenders = []
    for path in (pathlib.Path(__file__).resolve().parents[2] / "marketplace").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path}: {n}" for n in names if n == "jobs" or n.startswith("jobs.")]
    assert offenders == []
