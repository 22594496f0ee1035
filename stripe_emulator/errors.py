"""Stripe-shaped API errors."""


class StripeError(Exception):
    """An error answered to the client in Stripe's envelope."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message, code=None, param=None, status=None, type=None,
                 decline_code=None, extra=None, saved=True, headers=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        # Stripe does not store an idempotent result for requests that failed validation.
        self.saved = saved
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self, request_id=None):
        """The JSON error envelope."""
        err = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.decline_code:
            err["decline_code"] = self.decline_code
        if self.param:
            err["param"] = self.param
        if request_id:
            err["request_log_url"] = (
                "https://dashboard.stripe.com/test/logs/" + request_id)
        err.update(self.extra)
        return {"error": err}


def invalid(message, param=None, code=None):
    """400 for a bad parameter; not stored under an idempotency key."""
    return StripeError(message, code=code or ("parameter_invalid" if param else None),
                       param=param, saved=False)


def missing(param):
    """400 for a required parameter left out."""
    return StripeError("Missing required param: %s." % param, code="parameter_missing",
                       param=param, saved=False)


def unknown(param):
    """400 for a parameter the endpoint does not take."""
    return StripeError("Received unknown parameter: %s" % param, code="parameter_unknown",
                       param=param, saved=False)


def not_found(kind, oid, param="id"):
    """404 resource_missing."""
    return StripeError("No such %s: '%s'" % (kind, oid), code="resource_missing",
                       param=param, status=404)


def api_error(status=500, message="An unknown error occurred"):
    """A 5xx api_error."""
    return StripeError(message, status=status, type="api_error")
