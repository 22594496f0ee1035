"""What the benchmarks that run the stack as processes share: ports, a scratch database, Redis, stopping."""
from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(server: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server's postgres database."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database."""
    from redis import Redis

    Redis.from_url(url).flushdb()


def spawn(cmd: list[str], cwd, env: dict, log) -> subprocess.Popen:
    """Start `cmd` in a session of its own (stop() ends it with its children), its output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with its children."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    return [name] + raw[raw.rindex(")") + 2:].split()


def _cpu_seconds(fields: list[str]) -> float:
    """utime + stime + cutime + cstime: the process's CPU and that of its children it reaped."""
    return sum(int(fields[i]) for i in (12, 13, 14, 15)) / TICKS


def cpu_by_group(sessions: dict[str, list[int]], names: dict[str, str]) -> dict[str, float]:
    """CPU seconds used so far, per group: the processes of each `sessions` group's session
    ids (spawned with start_new_session, so a process and all it forked), and the processes
    whose command is `names[group]` (postgres, redis-server). Linux /proc only."""
    totals = {group: 0.0 for group in [*sessions, *names]}
    by_session = {sid: group for group, sids in sessions.items() for sid in sids}
    by_name = {name: group for group, name in names.items()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        session, name = int(fields[4]), fields[0]
        group = by_session.get(session) or by_name.get(name)
        if group:
            totals[group] += _cpu_seconds(fields)
    return totals


def copy_ledger(conn, entries, postings) -> None:
    """COPY the tab-separated journal entries and postings written so far into their tables,
    then empty both buffers (the benchmarks' bulk seeding of the ledger)."""
    for table, cols, buf in (
        ("journal_entries", "id, entry_key, kind, description, occurred_at, stripe_object_id, "
         "stripe_balance_transaction_id, stripe_account, local_type, local_id, created_at", entries),
        ("postings", "id, entry_id, seq, account, currency, amount", postings),
    ):
        with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        buf.seek(0)
        buf.truncate()
