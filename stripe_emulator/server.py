"""The WSGI application: auth, rate limits, parameters, faults, idempotency, routing, JSON
answers, latency."""
import base64
import json
import re
import time

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from . import forms, reference, validation
from .errors import StripeError, api_error
from .faults import AFTER as FAULTS_AFTER
from .limits import rate_limit_error
from .routes import build_map, endpoint_reference, handler
from .state import Emulator, set_request_context
from .store import new_id

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


def check_version(requested):
    """The API version this request is served at: the current one, whatever was asked.

    No header means the account's default version, which is the current one here. A
    malformed or unknown version is refused as Stripe refuses it; an older real version is
    refused too, because the emulator serves only the current one (a deliberate difference).
    """
    current = reference.api_version()
    if not requested or requested in (current, current.split(".")[0]):
        return current
    if not _VERSION.match(requested) or requested.split(".")[0] > current.split(".")[0]:
        raise StripeError("Invalid Stripe API version: %s" % requested, status=400,
                          saved=False)
    raise StripeError(
        "This emulator serves only Stripe API version %s; %s is older. Send %s (the "
        "version the stripe package sends by default)." % (current, requested, current),
        code="api_version_unsupported", status=400, saved=False)


class Context:
    """What a handler needs to know about the request it serves."""

    __slots__ = ("emu", "params", "account", "args", "request_id", "base_url",
                 "method", "path", "request")

    def __init__(self, emu, params, account, args, request_id, base_url, method, path,
                 request):
        self.emu = emu
        self.params = params
        self.account = account
        self.args = args
        self.request_id = request_id
        self.base_url = base_url
        self.method = method
        self.path = path
        self.request = request

    @property
    def is_platform(self):
        """True when acting on the platform itself (no Stripe-Account header)."""
        return self.account == self.emu.platform_id


def is_control(path):
    """True for the emulator's own /_emulator/ controls (never delayed, limited or faulted)."""
    return path.startswith("/_emulator/")


def _api_key(request):
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    if auth.startswith("Basic "):
        try:
            user = base64.b64decode(auth[6:]).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user
    return None


def _json(status, body, headers):
    resp = Response(json.dumps(body), status=status,
                    content_type="application/json")
    for k, v in headers.items():
        resp.headers[k] = v
    return resp


class App:
    """A WSGI app serving Stripe's /v1 API and the /_emulator controls from one Emulator."""

    def __init__(self, emulator=None, **config):
        self.emu = emulator or Emulator(**config)
        self.url_map = build_map()

    def __call__(self, environ, start_response):
        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request):
        """Answer one request; an API request (not a control) `latency_seconds` late."""
        response = self._answer(request)
        latency = self.emu.limits.latency_seconds
        if latency and not is_control(request.path):
            time.sleep(latency)  # on this request's thread, holding no lock
        return response

    def _answer(self, request):
        request_id = new_id("req")
        headers = {"Request-Id": request_id}
        try:
            return self._respond(request, request_id, headers)
        except StripeError as err:
            headers.update(err.headers)
            return _json(err.status, err.body(request_id), headers)
        except Exception:  # noqa: BLE001 - an emulator bug still answers in Stripe's shape
            import traceback
            traceback.print_exc()
            return _json(500, api_error().body(request_id), headers)

    def _match(self, request):
        adapter = self.url_map.bind("emulator", path_info=request.path)
        try:
            return adapter.match(method=request.method)
        except NotFound:
            raise StripeError("Unrecognized request URL (%s: %s)." % (
                request.method, request.path), status=404) from None
        except MethodNotAllowed:
            raise StripeError("Unrecognized request URL (%s: %s)." % (
                request.method, request.path), status=405) from None

    def _params(self, request, control):
        if request.method == "POST":
            body = request.get_data(as_text=True)
            if control and body.lstrip().startswith("{"):
                try:
                    return json.loads(body)
                except ValueError:
                    raise StripeError("Invalid JSON body.", saved=False) from None
            return forms.decode(body)
        return forms.decode(request.query_string.decode())

    def _respond(self, request, request_id, headers):
        path = request.path
        control = is_control(path)
        endpoint, args = self._match(request)
        params = forms.Params(self._params(request, control))
        emu = self.emu
        if control:
            ctx = Context(emu, params, emu.platform_id, args, request_id, request.host_url,
                          request.method, path, request)
            result = handler(endpoint)(ctx)
            if isinstance(result, Response):
                result.headers["Request-Id"] = request_id
                return result
            status, body = result if isinstance(result, tuple) else (200, result)
            return _json(status, body, headers)
        key = _api_key(request)
        if not key or not key.startswith(("sk_test_", "rk_test_")):
            raise StripeError(
                "Invalid API Key provided: %s" % ((key or "")[:8] + "****") if key else
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
                type="authentication_error", status=401)
        headers["Stripe-Version"] = check_version(request.headers.get("Stripe-Version"))
        admitted = emu.limits.admit(request.method)
        with emu.lock:
            emu.requests[endpoint] += 1
            if not admitted:
                emu.rate_limited[endpoint] += 1
        if not admitted:  # before anything changes, and never kept for an idempotency key
            raise emu.limits.refusal()
        spec = endpoint_reference(endpoint)
        validation.check_removed(path, params.data)
        validation.check_params(spec["params"], params.data,
                                limits=validation.limits_for(path))
        validation.check_expand(params.list("expand"), spec["returns"])
        account = request.headers.get("Stripe-Account") or emu.platform_id
        idem = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        scope = None
        if idem:
            scope = (key, account, idem)
            fingerprint = (request.method, path, json.dumps(params.data, sort_keys=True))
            stored = emu.idempotency.begin(scope, fingerprint)
            if stored is not None:
                headers.update({"Idempotent-Replayed": "true",
                                "Original-Request": stored["request_id"]})
                return _json(stored["status"], stored["body"], headers)
        fault = emu.faults.take(request.method, request.path)
        lost = fault if fault and fault["mode"] in FAULTS_AFTER else None
        try:
            if fault and not lost:
                self._fault(fault, headers)
            status, body = self._execute(request, endpoint, args, params, account,
                                         request_id, idem, headers)
        except StripeError as err:
            if scope and err.saved:
                emu.idempotency.finish(scope, err.status, err.body(request_id), request_id)
            elif scope:
                emu.idempotency.abandon(scope)
            if lost and err.saved:  # carried out (a refusal, kept for the key); its answer is lost
                self._lose(lost)
            raise
        except Exception:
            if scope:
                emu.idempotency.finish(scope, 500, api_error().body(request_id), request_id)
            raise
        if scope:
            emu.idempotency.finish(scope, status, body, request_id)
        if lost:
            self._lose(lost)
        return _json(status, body, headers)

    def _execute(self, request, endpoint, args, params, account, request_id, idem, headers):
        emu = self.emu
        with emu.lock:
            if account != emu.platform_id:
                acct = emu.store.find(account)
                if acct is None or acct["_kind"] != "account":
                    raise StripeError(
                        "The provided key does not have access to account '%s' (or that "
                        "account does not exist). Application access may have been revoked."
                        % account, code="account_invalid", status=403, saved=False)
            set_request_context(request_id, idem)
            try:
                ctx = Context(emu, params, account, args, request_id, request.host_url,
                              request.method, request.path, request)
                result = handler(endpoint)(ctx)
                if request.method == "POST":
                    emu.after_change()
                status, body = result if isinstance(result, tuple) else (200, result)
                expand = params.list("expand")
                if expand and isinstance(body, dict):
                    emu.expand(body, expand)
            finally:
                set_request_context(None, None)
        return status, body

    def _lose(self, fault):
        """The request was carried out and its answer kept for its idempotency key; the
        client gets an error instead (after `seconds`, when given: past its timeout, the
        client sees no answer at all). A retry under the same key replays the real answer."""
        if fault.get("seconds"):
            time.sleep(min(float(fault["seconds"]), 30.0))
        raise StripeError("An unknown error occurred (injected fault: the request was carried "
                          "out, its answer lost).", type="api_error",
                          status=int(fault.get("status") or 500), saved=False,
                          headers={"Stripe-Should-Retry": "true"})

    def _fault(self, fault, headers):
        """Fail as the armed fault says, before any state changes."""
        mode = fault["mode"]
        if mode == "delay":
            time.sleep(min(float(fault.get("seconds") or 1.0), 30.0))
            return
        if mode == "timeout":
            time.sleep(min(float(fault.get("seconds") or self.emu.timeout_fault_seconds), 30.0))
            raise StripeError("The request timed out.", type="api_error",
                              status=int(fault.get("status") or 500), saved=False)
        if mode == "rate_limit":
            raise rate_limit_error()
        raise StripeError("An unknown error occurred (injected fault).", type="api_error",
                          status=int(fault.get("status") or 500), saved=False,
                          headers={"Stripe-Should-Retry": "true"})
