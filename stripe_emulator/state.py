"""The emulator's state: store, clock, balance transactions, events and rendering."""
import threading
from collections import Counter

from . import shapes
from .clock import Clock
from .faults import Faults
from .idempotency import IdempotencyStore
from .limits import Limits
from .reference import api_version
from .scheduler import Scheduler
from .store import Store, new_id
from .webhooks import Dispatcher

API_VERSION = api_version()
DAY = 86400
# Seconds between a capture and its balance transaction, transfer and application fee
# (Stripe's asynchronous capture; its SLA is an hour, it is usually seconds).
SETTLE_DELAY = 0.2

_local = threading.local()


def request_context():
    """(request id, idempotency key) of the API request being served on this thread."""
    return getattr(_local, "request_id", None), getattr(_local, "idempotency_key", None)


def set_request_context(request_id, idempotency_key):
    """Remember the current request so events can name it."""
    _local.request_id = request_id
    _local.idempotency_key = idempotency_key


def clone(value):
    """A deep copy of JSON-like data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


class Emulator:
    """All of the emulator's in-memory state, guarded by one re-entrant lock."""

    def __init__(self, available_after_days=2, webhook_url=None, webhook_secret=None,
                 webhook_attempts=5, webhook_backoff=0.05, timeout_fault_seconds=3.0,
                 deliver_in_background=True, settle_delay=SETTLE_DELAY, latency_seconds=0.0,
                 read_per_second=None, write_per_second=None):
        self.lock = threading.RLock()
        # per-call latency and Stripe's read and write rate limits (off unless configured;
        # GET/POST /_emulator/limits); reset returns to these start-up settings
        self.limits = Limits(latency_seconds, read_per_second, write_per_second)
        self.default_settle_delay = float(settle_delay)
        self.scheduler = Scheduler(self.lock, background=deliver_in_background,
                                   after=self.after_change)
        self.clock = Clock()
        self.available_after = int(available_after_days) * DAY
        self.timeout_fault_seconds = timeout_fault_seconds
        # Payouts: pending until this many seconds after creation, then in transit until
        # arrival_date (created + payout_arrival_seconds), then paid or failed.
        self.payout_transit_seconds = 3600
        self.payout_arrival_seconds = DAY
        self.idempotency = IdempotencyStore(self.clock)
        self.faults = Faults()
        # API requests served, by method and route (`POST /v1/payment_intents/<id>/confirm`):
        # what a benchmark counts the Stripe calls of a flow with (GET/DELETE /_emulator/requests);
        # of those, the ones the rate limiter refused (answered 429)
        self.requests = Counter()
        self.rate_limited = Counter()
        self.webhooks = Dispatcher(self, webhook_url, webhook_secret,
                                   attempts=webhook_attempts, backoff=webhook_backoff,
                                   background=deliver_in_background)
        self.reset()

    def reset(self):
        """Forget everything except the configuration."""
        with self.lock:
            self.store = Store()
            self.platform_id = "acct_1EmulatorPlatform0000"
            self.idempotency.clear()
            self.faults.clear()
            self.limits.reset()
            self.requests.clear()
            self.rate_limited.clear()
            self.scheduler.clear()
            self.webhooks.clear()
            self.clock.reset()
            # "async": balance transaction, transfer and fee appear after settle_delay,
            # announced by charge.updated (Stripe's default); "sync": at capture.
            self.capture_mode = "async"
            self.settle_delay = self.default_settle_delay
            # (customer, payment method) pairs set up for future (off-session) use
            self._set_up = set()
            # refunds waiting for funds or for the card network, oldest first
            self.pending_refunds = []
            # the platform's balance settings (GET/POST /v1/balance_settings): Stripe may
            # debit its bank account when its balance cannot cover a refund
            self.debit_negative_balances = True
            # the currencies the platform settles in (multi-currency settlement is set in
            # Stripe's Dashboard; here by the `platform` control): a charge in any other
            # currency is converted to the default one
            self.default_currency = "usd"
            self.settlement_currencies = {"usd"}
            # Billing's settings for failed payments (the `billing` control; see
            # resources/invoices.py), and whether the clock is passing due billing steps
            self.billing = None
            self.billing_stepping = False

    def now(self):
        """Emulator time in unix seconds."""
        return self.clock.now()

    def settlement_currency(self, currency):
        """The currency the platform's balance takes a charge in `currency` in."""
        return currency if currency in self.settlement_currencies else self.default_currency

    def set_up(self, customer, payment_method):
        """Remember that a card was set up for future use (SetupIntent, setup_future_usage)."""
        self._set_up.add((customer, payment_method))

    def is_set_up(self, customer, payment_method):
        """Whether the customer's card was set up (then off-session use skips 3-D Secure)."""
        return customer is not None and (customer, payment_method) in self._set_up

    def after_change(self):
        """Follow-ups of any change of balances (the caller holds the lock): refunds waiting
        for funds go through once the balance covers them."""
        if self.pending_refunds:
            from .resources.refunds import release_funded
            release_funded(self)

    def wait_idle(self, timeout=10.0):
        """Block until no scheduled work waits and every webhook delivery is done."""
        return self.scheduler.wait_idle(timeout) and self.webhooks.wait_idle(timeout)

    def stop(self):
        """Stop the background threads."""
        self.scheduler.stop()
        self.webhooks.stop()

    def new_id(self, prefix):
        """A fresh object id."""
        return new_id(prefix)

    # rendering -------------------------------------------------------------------------

    def render(self, obj):
        """The public JSON form of a stored object (private `_` keys dropped)."""
        from .render import RENDERERS
        out = {k: clone(v) for k, v in obj.items() if k[0] != "_"}
        hook = RENDERERS.get(obj.get("_kind"))
        if hook:
            hook(self, obj, out)
        return shapes.complete(out, out.get("object"))

    def expand(self, out, paths):
        """Replace ids by objects along each dotted expand path."""
        for path in paths:
            self._expand(out, path.split("."))
        return out

    def _expand(self, node, parts):
        if not parts or not isinstance(node, dict):
            return
        key, rest = parts[0], parts[1:]
        if key == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand(item, rest)
            return
        value = node.get(key)
        if value is None and key in shapes.INCLUDABLE.get(node.get("object"), ()):
            from .render import includable
            value = node[key] = includable(self, node, key)
        if isinstance(value, str):
            target = self.store.find(value)
            if target is None:
                return
            value = node[key] = self.render(target)
        if isinstance(value, dict):
            self._expand(value, rest)

    # money -----------------------------------------------------------------------------

    def later(self, available_on):
        """The later of now and `available_on`: debits follow the funds they reverse."""
        return max(self.now(), available_on or 0)

    def add_bt(self, account, type, amount, currency, source, category, description=None,
               fee_details=(), available_on=None, payout=None, exchange_rate=None):
        """Record a balance transaction on `account`; net = amount - fee."""
        fee = sum(d["amount"] for d in fee_details)
        now = self.now()
        bt = {
            "id": new_id("txn"), "object": "balance_transaction", "amount": amount,
            "available_on": now if available_on is None else available_on,
            "created": now, "currency": currency, "description": description,
            "exchange_rate": exchange_rate, "fee": fee,
            "fee_details": [dict(d, currency=currency, application=None)
                            for d in fee_details],
            "net": amount - fee, "reporting_category": category, "source": source,
            "status": "pending", "type": type, "balance_type": "payments", "_payout": payout,
        }
        return self.store.add("balance_transaction", account, bt)

    def balance(self, account):
        """{currency: [available, pending]} from the account's balance transactions."""
        now = self.now()
        sums = {}
        for bt in self.store.all("balance_transaction", account):
            row = sums.setdefault(bt["currency"], [0, 0])
            row[0 if bt["available_on"] <= now else 1] += bt["net"]
        return sums

    # events ----------------------------------------------------------------------------

    def emit(self, type, obj, account=None, previous=None):
        """Record an event about `obj` (rendered now) and queue its webhook deliveries."""
        request_id, key = request_context()
        event = {
            "id": new_id("evt"), "object": "event", "api_version": API_VERSION,
            "created": self.now(), "data": {"object": self.render(obj)},
            "livemode": False, "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": key}, "type": type,
        }
        if previous:
            event["data"]["previous_attributes"] = previous
        if account and account != self.platform_id:
            event["account"] = account
        owner = account or self.platform_id
        self.store.add("event", owner, event)
        self.webhooks.enqueue(event)
        return event
