"""Configuration read from the environment, validated at start-up.

The names are fixed by API.md. `load_config()` picks the class from APP_ENV
(development, testing, production; development when unset).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


DEFAULT_CURRENCIES = ("usd", "eur", "gbp", "jpy", "kwd")


def _currencies(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return DEFAULT_CURRENCIES
    values = tuple(dict.fromkeys(c.strip().lower() for c in raw.split(",") if c.strip()))
    if not values or not all(re.fullmatch(r"[a-z]{3}", c) for c in values):
        raise ConfigError("SUPPORTED_CURRENCIES must be a comma-separated list of ISO 4217 codes")
    return values


def normalize_database_url(url: str) -> str:
    """Let plain postgres:// URLs use psycopg 3, the driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    TESTING = False
    DEBUG = False
    DEFAULT_STRIPE_SECRET_KEY: str | None = None
    DEFAULT_STRIPE_WEBHOOK_SECRET: str | None = None
    DEFAULT_SECRET_KEY: str | None = None

    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}

    API_TITLE = "Marketplace payments API"
    API_VERSION = "1.0"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"

    # werkzeug's scrypt: memory-hard and slow on purpose.
    PASSWORD_HASH_METHOD = "scrypt:32768:8:1"

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.SECRET_KEY = env.get("SECRET_KEY") or self.DEFAULT_SECRET_KEY
        db_url = env.get("DATABASE_URL")
        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(db_url) if db_url else None
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY") or self.DEFAULT_STRIPE_SECRET_KEY
        self.STRIPE_WEBHOOK_SECRET = (
            env.get("STRIPE_WEBHOOK_SECRET") or self.DEFAULT_STRIPE_WEBHOOK_SECRET
        )
        self.STRIPE_CONNECT_WEBHOOK_SECRET = env.get("STRIPE_CONNECT_WEBHOOK_SECRET") or None
        self.STRIPE_API_BASE = env.get("STRIPE_API_BASE") or None
        self.STRIPE_MAX_NETWORK_RETRIES = _int(env, "STRIPE_MAX_NETWORK_RETRIES", 2)
        # Stripe's rate limits count reads (GET) and writes per second per account, across
        # every process: the app paces its own calls below them through one shared window
        # (Redis when REDIS_URL is set). 0: not paced. Live mode allows 100 and 100, test
        # mode 25 and 25.
        self.STRIPE_READS_PER_SECOND = _int(env, "STRIPE_READS_PER_SECOND", 0)
        self.STRIPE_WRITES_PER_SECOND = _int(env, "STRIPE_WRITES_PER_SECOND", 0)
        # A payout run is cut into shards of this many vendors, worked by every RQ worker
        # (and the process that started it), each paying this many vendors at once.
        self.PAYOUT_SHARD_SIZE = _int(env, "PAYOUT_SHARD_SIZE", 100, minimum=1)
        self.PAYOUT_CONCURRENCY = _int(env, "PAYOUT_CONCURRENCY", 8, minimum=1)
        if (self.SQLALCHEMY_DATABASE_URI or "").startswith("postgresql"):
            # A connection for each vendor a payout run pays at once, beside the process's own
            # threads: past the pool every checkout would open and close a connection. The
            # most recently used one is handed out first, and only one idle a while is
            # pinged on checkout (database.ping_when_idle), not every one on every checkout.
            self.SQLALCHEMY_ENGINE_OPTIONS = {**self.SQLALCHEMY_ENGINE_OPTIONS,
                                              "pool_size": self.PAYOUT_CONCURRENCY + 5, "pool_use_lifo": True}
        self.PLATFORM_FEE_BPS = _int(env, "PLATFORM_FEE_BPS", 1000)
        self.PLATFORM_FEE_FIXED = _int(env, "PLATFORM_FEE_FIXED", 0)
        self.PAYOUT_HOLD_DAYS = _int(env, "PAYOUT_HOLD_DAYS", 7)
        self.PAYOUT_MIN_AMOUNT = _int(env, "PAYOUT_MIN_AMOUNT", 100)
        # An order still unpaid this long after its creation is canceled and its stock released.
        self.ORDER_PAYMENT_WINDOW_HOURS = _int(env, "ORDER_PAYMENT_WINDOW_HOURS", 24, minimum=1)
        self.TOKEN_TTL_SECONDS = _int(env, "TOKEN_TTL_SECONDS", 12 * 3600, minimum=60)
        # Live tokens a user may hold; issuing one more revokes the oldest.
        self.TOKEN_MAX_PER_USER = _int(env, "TOKEN_MAX_PER_USER", 10, minimum=1)
        # Request bodies: refused (413) from their Content-Length before a byte is read.
        self.MAX_BODY_BYTES = _int(env, "MAX_BODY_BYTES", 256 * 1024, minimum=1024)
        # Stripe's deliveries carry whole objects (an invoice with its lines, a charge with
        # its refunds): their own, larger limit.
        self.WEBHOOK_MAX_BODY_BYTES = _int(env, "WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, minimum=64 * 1024)
        # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host; 0: none,
        # the peer's address is the client's. Only these hops' headers are believed.
        self.TRUSTED_PROXIES = _int(env, "TRUSTED_PROXIES", 0)
        self.OUTBOX_RELAY_INTERVAL = _int(env, "OUTBOX_RELAY_INTERVAL", 5, minimum=1)
        self.OUTBOX_MAX_ATTEMPTS = _int(env, "OUTBOX_MAX_ATTEMPTS", 10, minimum=1)
        # Processing attempts per webhook event before it is marked failed (then: replay).
        self.WEBHOOK_MAX_ATTEMPTS = _int(env, "WEBHOOK_MAX_ATTEMPTS", 5, minimum=1)
        self.MOVEMENT_MAX_ATTEMPTS = _int(env, "MOVEMENT_MAX_ATTEMPTS", 10, minimum=1)
        self.EXPORT_CHUNK_SIZE = _int(env, "EXPORT_CHUNK_SIZE", 2000, minimum=1)
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO").upper()
        # Set: every process (gunicorn's workers, `flask worker`) writes its metrics into this
        # directory and /metrics sums them (prometheus-client's multiprocess mode, which reads
        # the same variable when it is imported). Unset: each app counts on its own.
        self.PROMETHEUS_MULTIPROC_DIR = env.get("PROMETHEUS_MULTIPROC_DIR") or None
        # Set: /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`.
        self.METRICS_TOKEN = env.get("METRICS_TOKEN") or None
        # flask-limiter syntax ("10 per minute; 100 per hour"), per client IP or per token.
        self.RATELIMIT_ENABLED = (env.get("RATELIMIT_ENABLED") or "true").lower() != "false"
        self.RATELIMIT_REGISTER = env.get("RATELIMIT_REGISTER") or "20 per hour"
        self.RATELIMIT_TOKENS = env.get("RATELIMIT_TOKENS") or "10 per minute; 100 per hour"
        self.RATELIMIT_CHECKOUT = env.get("RATELIMIT_CHECKOUT") or "60 per minute"
        # Velocity checks at checkout, per shopper and per IP, over a sliding window.
        self.FRAUD_WINDOW_SECONDS = _int(env, "FRAUD_WINDOW_SECONDS", 3600, minimum=1)
        self.FRAUD_MAX_ORDERS = _int(env, "FRAUD_MAX_ORDERS", 30, minimum=1)
        self.FRAUD_MAX_FAILED_PAYMENTS = _int(env, "FRAUD_MAX_FAILED_PAYMENTS", 5, minimum=1)
        self.STRIPE_TIMEOUT_SECONDS = _int(env, "STRIPE_TIMEOUT_SECONDS", 30, minimum=1)
        self.SUPPORTED_CURRENCIES = _currencies(env.get("SUPPORTED_CURRENCIES"))
        # Who bears a disputed sale while the dispute is open: the vendor (its transfer is
        # reversed, and re-made if the dispute is won) or the platform alone.
        self.DISPUTE_RECOVERY = (env.get("DISPUTE_RECOVERY") or "vendor").lower()
        self.STRIPE_ONBOARDING_RETURN_URL = (
            env.get("STRIPE_ONBOARDING_RETURN_URL") or "http://localhost:5000/onboarding/return"
        )
        self.STRIPE_ONBOARDING_REFRESH_URL = (
            env.get("STRIPE_ONBOARDING_REFRESH_URL") or "http://localhost:5000/onboarding/refresh"
        )
        # Where Stripe Checkout sends the shopper back; `{CHECKOUT_SESSION_ID}` is filled in by
        # Stripe, `{ORDER_ID}` by the app.
        self.CHECKOUT_SUCCESS_URL = (
            env.get("CHECKOUT_SUCCESS_URL")
            or "http://localhost:5000/orders/{ORDER_ID}/paid?session_id={CHECKOUT_SESSION_ID}"
        )
        self.CHECKOUT_CANCEL_URL = env.get("CHECKOUT_CANCEL_URL") or "http://localhost:5000/orders/{ORDER_ID}"

class DevelopmentConfig(Config):
    """Local development and the demo: emulator keys, SQLite, inline jobs."""

    ENV_NAME = "development"
    DEBUG = False
    DEFAULT_STRIPE_SECRET_KEY = "sk_test_emulator"
    DEFAULT_STRIPE_WEBHOOK_SECRET = "whsec_emulator"
    DEFAULT_SECRET_KEY = "dev-only-secret-key-change-me"


class TestingConfig(DevelopmentConfig):
    """The test suite: cheaper password hashing, no network retries to Stripe."""

    ENV_NAME = "testing"
    TESTING = True
    PASSWORD_HASH_METHOD = "scrypt:1024:8:1"

    def __init__(self, environ: Mapping[str, str] | None = None):
        super().__init__(environ)
        self.STRIPE_MAX_NETWORK_RETRIES = 0


class ProductionConfig(Config):
    """Production: every secret comes from the environment."""

    ENV_NAME = "production"


# Values published in this repository (defaults, examples, the emulator's keys): known to
# anyone, so production refuses them whoever set them.
KNOWN_SECRETS = frozenset({
    DevelopmentConfig.DEFAULT_SECRET_KEY, DevelopmentConfig.DEFAULT_STRIPE_SECRET_KEY,
    DevelopmentConfig.DEFAULT_STRIPE_WEBHOOK_SECRET,
    "change-me", "changeme", "secret", "dev", "development", "test", "testing",
    "sk_test_123", "whsec_123", "whsec_test", "sk_test_emulator", "whsec_emulator",
})
MIN_SECRET_KEY_BYTES = 32
# RFC 6750's b64token: what a bearer token may hold, and what log redaction scrubs whole.
MIN_METRICS_TOKEN_CHARS = 32
METRICS_TOKEN_FORMAT = re.compile(r"[A-Za-z0-9\-._~+/]{%d,}=*" % MIN_METRICS_TOKEN_CHARS)


def _known(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in KNOWN_SECRETS or "emulator" in lowered or "change-me" in lowered or "changeme" in lowered


def _validate_production_secrets(cfg: Mapping[str, Any]) -> None:
    for name in ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET",
                 "METRICS_TOKEN"):
        value = cfg.get(name)
        if value and _known(value):
            raise ConfigError(f"{name} is a published development value; production needs its own")
    if len(cfg["SECRET_KEY"].encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes in production")


def validate_settings(cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first bad variable (never its value)."""
    if not 0 <= cfg["PLATFORM_FEE_BPS"] <= 10000:
        raise ConfigError("PLATFORM_FEE_BPS must be between 0 and 10000")
    if not cfg.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY must be set")
    if not (cfg.get("STRIPE_SECRET_KEY") or "").startswith("sk_"):
        raise ConfigError("STRIPE_SECRET_KEY must be set and start with 'sk_'")
    if not (cfg.get("STRIPE_WEBHOOK_SECRET") or "").startswith("whsec_"):
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be set and start with 'whsec_'")
    connect = cfg.get("STRIPE_CONNECT_WEBHOOK_SECRET")
    if connect is not None and not connect.startswith("whsec_"):
        raise ConfigError("STRIPE_CONNECT_WEBHOOK_SECRET must start with 'whsec_'")
    base = cfg.get("STRIPE_API_BASE")
    if base is not None and not re.match(r"^https?://[^\s/]+", base):
        raise ConfigError("STRIPE_API_BASE must be an http(s) URL")
    if cfg.get("DISPUTE_RECOVERY", "vendor") not in ("vendor", "platform"):
        raise ConfigError("DISPUTE_RECOVERY must be vendor or platform")
    redis_url = cfg.get("REDIS_URL")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    multiproc = cfg.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc is not None and not os.path.isabs(multiproc):
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR must be an absolute path")
    token = cfg.get("METRICS_TOKEN")
    if token is not None and not METRICS_TOKEN_FORMAT.fullmatch(token):
        raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters of "
                          "A-Z a-z 0-9 - . _ ~ + / (a bearer token)")
    if cfg.get("ENV_NAME") == "production":
        _validate_production_secrets(cfg)


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration named by APP_ENV from the environment."""
    env = os.environ if environ is None else environ
    name = env.get("APP_ENV", "development")
    if name not in CONFIGS:
        raise ConfigError("APP_ENV must be one of development, testing, production")
    return CONFIGS[name](env)
