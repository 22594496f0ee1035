"""The current Stripe API as the emulator serves it: `api.json`, generated from the `stripe`
package by `build.py` (objects and their fields, nested shapes, each served endpoint's
parameters and what it returns, the event types, the API version)."""
import functools
import json
import pathlib

PATH = pathlib.Path(__file__).resolve().parent / "api.json"


@functools.lru_cache(maxsize=1)
def data():
    """The parsed reference."""
    return json.loads(PATH.read_text())


def api_version():
    """The version the emulator serves: the one the pinned `stripe` package sends."""
    return data()["api_version"]


def endpoint(key):
    """`{"params": tree, "returns": name}` of an endpoint key such as `POST /v1/refunds`."""
    return data()["endpoints"].get(key)


def fields(kind):
    """`{field: kind}` of an object (`charge`) or a nested shape (`charge.outcome`)."""
    ref = data()
    return ref["objects"].get(kind) or ref["shapes"].get(kind)


def event_types():
    """Every event type a webhook endpoint may subscribe to (and `*`)."""
    return frozenset(data()["event_types"])
