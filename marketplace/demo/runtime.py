"""The moving parts of the tour: the emulator, the API over real HTTP, and a JSON client."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class DemoError(click.ClickException):
    """A step of the tour did not get the answer it expected."""


@dataclass
class ApiClient:
    """JSON over HTTP against the running API, failing loudly on unexpected statuses."""

    base_url: str
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, token: str | None = None, expect: int | tuple = (200, 201, 202),
             **kwargs: Any) -> Any:
        """One request; raises DemoError unless the status is one of `expect`."""
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)
        allowed = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in allowed:
            raise DemoError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class ServedApp:
    """A WSGI app served on a free local port; the app may be attached after the port is known."""

    def __init__(self, app: Flask | None = None, host: str = "127.0.0.1"):
        self.app = app
        self._server = make_server(host, 0, self._dispatch, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-api", daemon=True)

    def _dispatch(self, environ, start_response):
        return self.app(environ, start_response)

    def start(self) -> "ServedApp":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for(check, what: str, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check()` until it returns something truthy (webhooks arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise DemoError(f"timed out waiting for {what}")


class Progress:
    """Numbered steps with their duration, so a long tour shows where it is."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0

    def step(self, title: str):
        return _Step(self, title)


class _Step:
    def __init__(self, progress: Progress, title: str):
        self.progress, self.title = progress, title

    def __enter__(self):
        self.progress.done += 1
        self.started = time.perf_counter()
        click.echo(f"[{self.progress.done:>2}/{self.progress.total}] {self.title} ...", nl=False)
        return self

    def __exit__(self, exc_type, exc, tb):
        elapsed = time.perf_counter() - self.started
        click.echo(f" {'done' if exc is None else 'FAILED'} ({elapsed:.2f}s)")
        return False
