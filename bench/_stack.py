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


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, with its children."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
