"""GET /v1/events and the webhook endpoints that receive them."""
from ..errors import invalid
from ..routes import route
from ..store import created_filter, paginate
from .common import apply_metadata, list_response, show


def _type_matcher(p):
    types = p.list("types") or ([p.str("type")] if p.has("type") else [])
    if not types:
        return lambda t: True
    exact = {t for t in types if not t.endswith("*")}
    prefixes = tuple(t[:-1] for t in types if t.endswith("*"))
    return lambda t: t in exact or (bool(prefixes) and t.startswith(prefixes))


@route("GET", "/v1/events")
def list_events(ctx):
    """GET /v1/events with type / types[] (wildcards like charge.*) / created filters."""
    p = ctx.params.check("limit", "starting_after", "ending_before", "created", "type",
                         "types", "delivery_success")
    match, when = _type_matcher(p), created_filter(p)
    items = [e for e in ctx.emu.store.all("event", ctx.account)
             if when(e["created"]) and match(e["type"])]
    return paginate(items, p, "/v1/events", ctx.emu.render)


@route("GET", "/v1/events/<eid>")
def retrieve_event(ctx):
    """GET /v1/events/{id}."""
    return show(ctx, ctx.emu.store.get("event", ctx.args["eid"], ctx.account, "event"))


def _event_types(p):
    """`enabled_events`, each one of the current API's event types (or `*`)."""
    from .. import reference
    events = p.list("enabled_events")
    known = reference.event_types()
    for i, name in enumerate(events):
        if name not in known:
            raise invalid("Invalid enabled_events[%d]: %s is not an event type of API %s."
                          % (i, name, reference.api_version()), "enabled_events[%d]" % i)
    return events


@route("POST", "/v1/webhook_endpoints")
def create_webhook_endpoint(ctx):
    """POST /v1/webhook_endpoints; the signing secret is only shown here."""
    p = ctx.params.check("url", "enabled_events", "connect", "description", "metadata",
                         "api_version", "disabled")
    events = _event_types(p)
    if not events:
        raise invalid("Missing required param: enabled_events.", "enabled_events",
                      code="parameter_missing")
    emu = ctx.emu
    endpoint = {
        "id": emu.new_id("we"), "object": "webhook_endpoint",
        "api_version": p.str("api_version"), "application": None,
        "created": emu.now(), "description": p.str("description"),
        "enabled_events": events, "livemode": False, "metadata": p.metadata() or {},
        "status": "enabled", "url": p.str("url", required=True),
        "_secret": "whsec_" + emu.new_id("x")[2:] + emu.new_id("x")[2:10],
        "_connect": p.bool("connect", False),
    }
    emu.store.add("webhook_endpoint", emu.platform_id, endpoint)
    out = show(ctx, endpoint)
    out["secret"] = endpoint["_secret"]
    return out


def _get(ctx):
    return ctx.emu.store.get("webhook_endpoint", ctx.args["wid"], ctx.emu.platform_id,
                             "webhook endpoint", "webhook_endpoint")


@route("GET", "/v1/webhook_endpoints/<wid>")
def retrieve_webhook_endpoint(ctx):
    """GET /v1/webhook_endpoints/{id}."""
    return show(ctx, _get(ctx))


@route("POST", "/v1/webhook_endpoints/<wid>")
def update_webhook_endpoint(ctx):
    """POST /v1/webhook_endpoints/{id}: url, enabled_events, disabled, metadata."""
    p = ctx.params.check("url", "enabled_events", "description", "metadata", "disabled")
    endpoint = _get(ctx)
    if p.has("url"):
        endpoint["url"] = p.str("url")
    if p.has("enabled_events"):
        endpoint["enabled_events"] = _event_types(p)
    if p.has("description"):
        endpoint["description"] = p.str("description")
    if p.has("disabled"):
        endpoint["status"] = "disabled" if p.bool("disabled") else "enabled"
    apply_metadata(endpoint, p)
    return show(ctx, endpoint)


@route("GET", "/v1/webhook_endpoints")
def list_webhook_endpoints(ctx):
    """GET /v1/webhook_endpoints."""
    return list_response(ctx, "webhook_endpoint", "/v1/webhook_endpoints",
                         owner=ctx.emu.platform_id)


@route("DELETE", "/v1/webhook_endpoints/<wid>")
def delete_webhook_endpoint(ctx):
    """DELETE /v1/webhook_endpoints/{id}."""
    endpoint = _get(ctx)
    store = ctx.emu.store
    del store.objects[endpoint["id"]]
    store.lists[("webhook_endpoint", ctx.emu.platform_id)].remove(endpoint)
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
