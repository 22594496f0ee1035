import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_config, validate_settings

ROOT = Path(__file__).resolve().parents[2]


def settings(**env):
    base = {"APP_ENV": "production", "SECRET_KEY": "s" * 32, "STRIPE_SECRET_KEY": "sk_live_abc",
            "STRIPE_WEBHOOK_SECRET": "whsec_abc"}
    base.update(env)
    cfg = load_config({k: v for k, v in base.items() if v is not None})
    return {k: getattr(cfg, k) for k in dir(cfg) if k.isupper()}


def test_valid_production_settings_pass():
    validate_settings(settings())


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"STRIPE_SECRET_KEY": "pk_live_leaky"}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_SECRET_KEY": None}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": "secret_leaky"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_CONNECT_WEBHOOK_SECRET": "nope_leaky"}, "STRIPE_CONNECT_WEBHOOK_SECRET"),
        ({"SECRET_KEY": None}, "SECRET_KEY"),
        ({"STRIPE_API_BASE": "ftp://leaky"}, "STRIPE_API_BASE"),
        ({"REDIS_URL": "http://leaky"}, "REDIS_URL"),
        ({"PLATFORM_FEE_BPS": "20000"}, "PLATFORM_FEE_BPS"),
    ],
)
def test_bad_settings_name_the_variable_not_the_value(env, variable):
    with pytest.raises(ConfigError) as info:
        validate_settings(settings(**env))
    assert variable in str(info.value)
    assert "leaky" not in str(info.value)


def test_non_integer_setting_is_rejected_at_load():
    with pytest.raises(ConfigError, match="PAYOUT_HOLD_DAYS must be an integer"):
        load_config({"PAYOUT_HOLD_DAYS": "seven"})


def test_unknown_app_env_is_rejected():
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_config({"APP_ENV": "staging"})


def test_development_defaults_to_the_emulator_keys():
    cfg = load_config({})
    assert cfg.STRIPE_SECRET_KEY == "sk_test_emulator"
    assert cfg.STRIPE_WEBHOOK_SECRET == "whsec_emulator"


def test_postgres_urls_use_psycopg3():
    cfg = load_config({"DATABASE_URL": "postgresql://u@h/db"})
    assert cfg.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@h/db"


def test_bad_key_stops_startup_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "development", "STRIPE_SECRET_KEY": "pk_test_secretvalue",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == ["configuration error: STRIPE_SECRET_KEY must be set and start with 'sk_'"]
    assert "secretvalue" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("variable, value", [
    ("SECRET_KEY", "dev-only-secret-key-change-me"),
    ("SECRET_KEY", "change-me-in-production-please-0123456789"),  # docker-compose's default, padded
    ("STRIPE_SECRET_KEY", "sk_test_emulator"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_emulator"),
    ("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_emulator"),
])
def test_production_refuses_published_secrets_naming_the_variable_only(variable, value):
    with pytest.raises(ConfigError) as info:
        validate_settings(settings(**{variable: value}))
    assert variable in str(info.value) and value not in str(info.value)


def test_production_refuses_a_short_secret_key():
    with pytest.raises(ConfigError) as info:
        validate_settings(settings(SECRET_KEY="s" * 31))
    assert "SECRET_KEY" in str(info.value) and "s" * 31 not in str(info.value)


def test_development_keeps_its_defaults():
    cfg = load_config({"APP_ENV": "development"})
    validate_settings({k: getattr(cfg, k) for k in dir(cfg) if k.isupper()})


def test_production_refuses_to_start_with_the_emulator_keys(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "production", "SECRET_KEY": "s" * 40,
           "STRIPE_SECRET_KEY": "sk_test_emulator", "STRIPE_WEBHOOK_SECRET": "whsec_abc",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "configuration error: STRIPE_SECRET_KEY is a published development value; production needs its own"]
    assert "sk_test_emulator" not in proc.stderr + proc.stdout
