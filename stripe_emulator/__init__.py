"""A stateful in-memory emulator of the Stripe Connect API, for tests, demos and benchmarks."""
import threading

from .http import make_server
from .server import App
from .state import Emulator

__all__ = ["App", "Emulator", "EmulatorServer", "create_app", "start_server"]


def create_app(**config):
    """A WSGI app with its own Emulator (config as Emulator's keyword arguments)."""
    return App(**config)


class EmulatorServer:
    """A running emulator: `.url`, `.emulator` (alias `.state`), `.app`, `.stop()`."""

    def __init__(self, app, httpd, thread):
        self.app = app
        self.emulator = self.state = app.emu
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.host, self.port = host, port
        self.url = "http://%s:%d" % (host, port)

    def reset(self):
        """Forget all state."""
        self.emulator.reset()

    def stop(self):
        """Shut the HTTP server and the webhook thread down."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self.emulator.stop()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve(host="127.0.0.1", port=12111, **config):
    """Build the app and a threaded keep-alive HTTP server (not yet serving)."""
    app = App(**config)
    httpd = make_server(host, port, app)
    return app, httpd


def start_server(host="127.0.0.1", port=0, webhook_url=None, webhook_secret=None,
                 available_after_days=2, **config):
    """Run the emulator in a background thread (port 0 picks a free port)."""
    app, httpd = serve(host, port, webhook_url=webhook_url, webhook_secret=webhook_secret,
                       available_after_days=available_after_days, **config)
    thread = threading.Thread(target=httpd.serve_forever, name="stripe-emulator",
                              daemon=True)
    thread.start()
    return EmulatorServer(app, httpd, thread)
