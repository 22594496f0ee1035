"""docker-compose.yml runs what the README says a deployment runs, with settings config.py reads."""
import json
import pathlib
import re
import shlex
from urllib.parse import urlsplit

import pytest
import yaml

import config
from config import ConfigError, load_config, validate_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
README = (ROOT / "README.md").read_text()
APP_SERVICES = ("migrate", "web", "worker")
_DEFAULTED = re.compile(r"^\$\{([A-Z_]+):-([^}]*)\}$")


def command(service: str) -> list[str]:
    raw = SERVICES[service]["command"]
    return shlex.split(raw) if isinstance(raw, str) else list(raw)


def resolved_env(service: str) -> dict[str, str]:
    """The service's environment with `${NAME:-default}` given its default (nothing else is interpolated)."""
    env = {}
    for name, value in SERVICES[service]["environment"].items():
        value = str(value)
        match = _DEFAULTED.match(value)
        assert match or "$" not in value, f"{service}: {name} must be a literal or ${{{name}:-default}}"
        if match:
            assert match.group(1) == name, f"{service}: {name} defaults from another variable"
        env[name] = match.group(2) if match else value
    return env


def readme_block_after(heading: str) -> str:
    """The first ```sh block of the README section `heading`."""
    section = README.split(f"## {heading}\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def readme_command(program: str) -> list[str]:
    """The `program ...` line of the README's deployment section, comment stripped."""
    block = readme_block_after("Running on PostgreSQL, Redis and real Stripe")
    [line] = [line for line in block.splitlines() if line.startswith(program + " ")]
    return shlex.split(line.split("#", 1)[0])


def settings_of(cfg) -> dict:
    """What the app's config holds (Flask's from_object: the upper-case attributes)."""
    return {name: getattr(cfg, name) for name in dir(cfg) if name.isupper()}


class Recording(dict):
    """An environment that remembers every name config.py asks it for."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def test_the_services_are_the_ones_the_readme_names():
    assert set(SERVICES) == {"postgres", "redis", "emulator", "migrate", "web", "worker"}
    for service in APP_SERVICES + ("emulator",):
        assert SERVICES[service]["build"] == "."


def test_the_web_command_is_the_readmes_gunicorn_command():
    from gunicorn.config import Config as GunicornConfig

    assert command("web") == readme_command("gunicorn")
    options = GunicornConfig().parser().parse_args(command("web")[1:])
    assert options.args == ["wsgi:app"] and (ROOT / "wsgi.py").exists()
    port = options.bind[0].rsplit(":", 1)[1]
    assert f"{port}:{port}" in SERVICES["web"]["ports"]
    # The image's own command (what runs it without compose) is the same one.
    [cmd] = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert json.loads(cmd[4:]) == command("web")


def test_the_worker_and_migrate_run_the_readmes_flask_commands():
    assert command("worker") == readme_command("flask worker") == ["flask", "worker"]
    assert command("migrate") == readme_command("flask db") == ["flask", "db", "upgrade"]
    assert re.search(r"^ENV .*\bFLASK_APP=wsgi\b", (ROOT / "Dockerfile").read_text(), re.M)  # `flask` finds the app
    from marketplace.worker import worker_command
    import flask_migrate  # noqa: F401  (`flask db`)

    assert worker_command.name == "worker"


def test_every_app_setting_is_one_config_reads_and_the_readme_documents():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.M))
    for service in APP_SERVICES:
        env = resolved_env(service)
        recording = Recording(env)
        load_config(recording)
        unread = set(env) - recording.read
        assert not unread, f"{service} sets what config.py never reads: {sorted(unread)}"
        assert not set(env) - documented, f"{service} sets what the README does not document"


def test_the_apps_share_one_environment_that_starts_in_development_and_not_in_production():
    envs = [resolved_env(service) for service in APP_SERVICES]
    assert envs[0] == envs[1] == envs[2]
    env = envs[0]
    assert env["APP_ENV"] == "development"
    validate_settings(settings_of(load_config(env)))
    with pytest.raises(ConfigError, match="published development value"):  # the placeholders, in production
        validate_settings(settings_of(load_config({**env, "APP_ENV": "production"})))


def test_the_money_settings_default_to_what_config_defaults_to():
    env, defaults = resolved_env("web"), config.Config({})
    for name in ("PLATFORM_FEE_BPS", "PLATFORM_FEE_FIXED", "PAYOUT_HOLD_DAYS", "PAYOUT_MIN_AMOUNT"):
        if name in env:
            assert int(env[name]) == getattr(defaults, name), name


def test_urls_point_at_the_services_that_serve_them(monkeypatch):
    env = resolved_env("web")
    database = urlsplit(env["DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert (database.hostname, database.port or 5432) == ("postgres", 5432)
    assert (database.password, database.path.lstrip("/")) == (postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"

    import stripe_emulator.__main__ as emulator_main

    started = {}

    def serve(host, port, **options):
        started.update(host=host, port=port, **options)
        raise SystemExit(0)

    monkeypatch.setattr(emulator_main, "serve", serve)
    argv = command("emulator")
    assert argv[:3] == ["python", "-m", "stripe_emulator"]
    with pytest.raises(SystemExit):
        emulator_main.main(argv[3:])
    api = urlsplit(env["STRIPE_API_BASE"])
    assert (api.hostname, api.port) == ("emulator", started["port"]) and started["host"] == "0.0.0.0"
    assert f"{started['port']}:{started['port']}" in SERVICES["emulator"]["ports"]
    assert started["webhook_secret"] == env["STRIPE_WEBHOOK_SECRET"]
    hook = urlsplit(started["webhook_url"])
    gunicorn_port = command("web")[command("web").index("--bind") + 1].rsplit(":", 1)[1]
    assert (hook.hostname, str(hook.port)) == ("web", gunicorn_port)
    from marketplace import create_app

    app = create_app(config.TestingConfig({}), {"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert hook.path in {rule.rule for rule in app.url_map.iter_rules() if "POST" in rule.methods}


def test_the_apps_start_after_the_schema_and_redis():
    for service in ("web", "worker"):
        depends = SERVICES[service]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_web_and_worker_write_their_metrics_into_one_shared_directory():
    env = resolved_env("web")
    path = env["PROMETHEUS_MULTIPROC_DIR"]
    assert load_config(env).PROMETHEUS_MULTIPROC_DIR == path and path.startswith("/")
    mounts = {service: [v for v in SERVICES[service].get("volumes", []) if v.split(":")[1] == path]
              for service in ("web", "worker")}
    [web], [worker] = mounts["web"], mounts["worker"]
    assert web == worker  # the same named volume, so web's /metrics sums the worker's files too
    assert web.split(":")[0] in COMPOSE["volumes"]
    assert load_config(env).METRICS_TOKEN is None  # open unless the operator sets one
    assert load_config({**env, "METRICS_TOKEN": "t" * 40}).METRICS_TOKEN == "t" * 40
