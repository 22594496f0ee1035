"""The metrics settings (PROMETHEUS_MULTIPROC_DIR, METRICS_TOKEN) and the multiprocess helpers
that need no server: what a bad value says, what a starting master clears, what logs keep."""
import pytest

import config
from config import ConfigError, load_config, validate_settings
from marketplace import create_app, observability
from marketplace.observability import JsonFormatter, clear_multiprocess_dir, redact

TOKEN = "Ab0-._~+/" * 4 + "=="  # every character a bearer token may hold


def settings(**env):
    base = {"APP_ENV": "production", "SECRET_KEY": "s" * 32, "STRIPE_SECRET_KEY": "sk_live_abc",
            "STRIPE_WEBHOOK_SECRET": "whsec_abc", **env}
    cfg = load_config(base)
    return {k: getattr(cfg, k) for k in dir(cfg) if k.isupper()}


def test_both_are_unset_by_default_and_empty_means_unset():
    for cfg in (settings(), settings(PROMETHEUS_MULTIPROC_DIR="", METRICS_TOKEN="")):
        assert cfg["PROMETHEUS_MULTIPROC_DIR"] is None and cfg["METRICS_TOKEN"] is None
        validate_settings(cfg)
    assert config.TestingConfig({}).PROMETHEUS_MULTIPROC_DIR is None  # the tests: one registry per app


def test_good_values_pass():
    validate_settings(settings(PROMETHEUS_MULTIPROC_DIR="/run/prometheus", METRICS_TOKEN=TOKEN))


@pytest.mark.parametrize("env, variable", [
    ({"PROMETHEUS_MULTIPROC_DIR": "run/prometheus"}, "PROMETHEUS_MULTIPROC_DIR"),
    ({"METRICS_TOKEN": "short-token-leaky"}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": "x" * 40 + " leaky"}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": "x" * 40 + ":leaky"}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": "change-me-" + "x" * 30}, "METRICS_TOKEN"),  # published-looking, in production
])
def test_bad_values_name_the_variable_not_the_value(env, variable):
    with pytest.raises(ConfigError) as info:
        validate_settings(settings(**env))
    assert variable in str(info.value) and "leaky" not in str(info.value)


def test_a_directory_set_after_prometheus_client_was_imported_stops_start_up(tmp_path):
    # This process imported prometheus-client without the variable: its metrics are not in files.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        create_app(config.TestingConfig({}),
                   {"SQLALCHEMY_DATABASE_URI": "sqlite://", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})


def test_a_starting_master_clears_the_web_files_and_keeps_the_workers(tmp_path):
    web = ["counter_12.db", "histogram_12.db", "gauge_livesum_12.db", "gauge_all_7.db"]
    kept = ["counter_rq-host-1.db", "histogram_rq-host-1.db", "notes.txt"]
    for name in web + kept:
        (tmp_path / name).write_bytes(b"")
    assert sorted(clear_multiprocess_dir(str(tmp_path))) == sorted(web)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert clear_multiprocess_dir(str(tmp_path / "new")) == [] and (tmp_path / "new").is_dir()


def test_naming_a_process_does_nothing_in_one_process_mode():
    from prometheus_client import values

    before = values.ValueClass
    observability.name_this_process("rq")
    assert values.ValueClass is before


@pytest.mark.parametrize("line", [f"Authorization: Bearer {TOKEN}", f"authorization: bearer {TOKEN} next",
                                  f"headers={{'Authorization': 'Bearer {TOKEN}'}}"])
def test_the_metrics_token_never_reaches_a_log_line(line):
    import logging

    assert TOKEN not in redact(line) and TOKEN[:-2] not in redact(line)
    record = logging.LogRecord("marketplace", logging.INFO, __file__, 1, "scrape %s", (line,), None)
    assert TOKEN[:-2] not in JsonFormatter().format(record)
