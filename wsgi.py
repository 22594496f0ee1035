"""WSGI entry point for gunicorn and the `flask` command: `app = create_app()`."""
import sys

from config import ConfigError
from marketplace import create_app

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable, never its value; no traceback.
    sys.exit(f"configuration error: {exc}")
