"""/metrics as served: gunicorn with two workers and `flask worker` writing into one
PROMETHEUS_MULTIPROC_DIR, so one scrape, answered by either worker, sums every process; the
database's figures beside them; METRICS_TOKEN guarding it; the Grafana dashboard querying
only what it shows."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from marketplace import tasks
from tests.integration.test_gunicorn import start_gunicorn, stop_gunicorn
from tests.payments_helpers import paid_order

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "mtk_" + "q7Rz-2Lp_9Xw.Ke4~" * 3
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEALTHZ = (("endpoint", "/healthz"), ("method", "GET"), ("status", "200"))
READYZ = (("endpoint", "/readyz"), ("method", "GET"), ("status", "200"))


@dataclass
class Served:
    url: str
    master: subprocess.Popen
    directory: Path
    log: Path

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())


def _stale_counter(path: Path, name: str, labels: dict, value: float) -> None:
    """A counter file as an earlier process left it."""
    store = MmapedDict(str(path))
    store.write_value(mmap_key(name, f"{name}_total", list(labels), list(labels.values()), "left over"), value, 0.0)
    store.close()


@pytest.fixture(scope="module")
def served(migrated, tmp_path_factory):
    if not Path("/proc/self/task").exists():
        pytest.skip("finds gunicorn's workers in /proc")
    directory, logs = tmp_path_factory.mktemp("prometheus"), tmp_path_factory.mktemp("logs")
    # What an earlier gunicorn's worker and a `flask worker` (elsewhere) left in the directory.
    _stale_counter(directory / "counter_999999.db", "http_requests",
                   {"endpoint": "/healthz", "method": "GET", "status": "200"}, 1000)
    _stale_counter(directory / "counter_rq-elsewhere-7.db", "marketplace_jobs",
                   {"job": tasks.EXPIRE_UNPAID_ORDERS, "outcome": "succeeded"}, 3)
    env = {**os.environ, "APP_ENV": "development", "REDIS_URL": "", "DATABASE_URL": migrated,
           "PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": TOKEN}
    log = logs / "gunicorn.log"
    with log.open("wb") as sink:
        port, master = start_gunicorn(env, "--workers", "2", "--threads", "1", log=sink)
    served = Served(f"http://127.0.0.1:{port}", master, directory, log)
    _wait(lambda: len(served.workers()) == 2, "two workers")
    yield served
    stop_gunicorn(master)


def _wait(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def scrape_text(served: Served) -> str:
    response = requests.get(f"{served.url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def scrape(served: Served) -> dict:
    """{(sample name, sorted labels): value} of one scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scrape_text(served)) for s in family.samples}


def per_worker(served: Served, labels: tuple) -> dict[int, float]:
    """What each gunicorn worker's own file says it served (read apart, not summed)."""
    counts = {}
    for path in served.directory.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        if not pid.isdigit():
            continue
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                if sample.name == "http_requests_total" and tuple(sorted(sample.labels.items())) == labels:
                    counts[int(pid)] = sample.value
    return counts


def _get_many(url: str, n: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: requests.get(url, timeout=10).status_code, range(n)))
    assert statuses == [200] * n


def test_a_starting_master_clears_earlier_web_files_and_keeps_the_workers(served):
    assert not (served.directory / "counter_999999.db").exists()
    assert (served.directory / "counter_rq-elsewhere-7.db").exists()
    figures = scrape(served)
    assert figures[("marketplace_jobs_total", (("job", tasks.EXPIRE_UNPAID_ORDERS), ("outcome", "succeeded")))] == 3


def test_one_scrape_sums_the_requests_every_worker_served(served):
    workers, sent = served.workers(), 0
    while sent < 2000:
        _get_many(f"{served.url}/healthz", 40)
        sent += 40
        served_by = per_worker(served, HEALTHZ)
        if len([pid for pid, n in served_by.items() if n > 0]) >= 2:
            break
    assert len([pid for pid, n in served_by.items() if n > 0]) >= 2, served_by
    assert set(served_by) <= set(workers)  # the live workers' own files, nothing older
    assert sum(served_by.values()) == sent
    # One scrape, whichever worker answers it, counts every request of both.
    for _ in range(2):
        assert scrape(served)[("http_requests_total", HEALTHZ)] == sent
    timed = scrape(served)[("http_request_duration_seconds_count", (("endpoint", "/healthz"), ("method", "GET")))]
    assert timed == sent


def test_a_dead_workers_requests_still_count_and_its_live_gauge_goes(served):
    victim = None
    while victim is None:
        _get_many(f"{served.url}/readyz", 20)
        victim = next(iter(per_worker(served, READYZ)), None)
    total = scrape(served)[("http_requests_total", READYZ)]
    assert (served.directory / f"gauge_livesum_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)
    # gunicorn's child_exit marks it dead (its live gauges' file goes) and starts another worker.
    _wait(lambda: victim not in served.workers() and len(served.workers()) == 2
          and not (served.directory / f"gauge_livesum_{victim}.db").exists(), "the worker replaced")
    assert (served.directory / f"counter_{victim}.db").exists()
    figures = scrape(served)
    assert figures[("http_requests_total", READYZ)] == total
    in_flight = sum(v for (name, _), v in figures.items() if name == "http_requests_in_progress")
    assert in_flight == 1  # this scrape itself; nothing of the dead worker


def test_metrics_needs_the_token_and_it_never_reaches_the_logs(served):
    for headers in ({}, {"Authorization": "Bearer " + TOKEN[::-1]}, {"Authorization": TOKEN}):
        response = requests.get(f"{served.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized" and set(response.json()["error"]) == {
            "code", "message", "details"}
    response = requests.get(f"{served.url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    assert TOKEN not in served.log.read_text() and TOKEN[::-1] not in served.log.read_text()


@pytest.mark.needs("emulator")
def test_the_database_figures_show_a_paid_payment_by_currency(served, client, shopper, emulator):
    order, _ = paid_order(client, shopper, emulator, [2500, 1700])
    figures = scrape(served)
    labels = (("currency", order["currency"]), ("status", "succeeded"))
    assert figures[("marketplace_payments_amount", labels)] == order["total"] == 4200
    assert figures[("marketplace_payments", labels)] == 1
    assert figures[("marketplace_business_metrics_up", ())] == 1
    # Read once per scrape, not once per process: no per-process label, one sample.
    assert [k for k in figures if k[0] == "marketplace_payments_amount" and dict(k[1])["currency"] == "usd"
            and dict(k[1])["status"] == "succeeded"] == [("marketplace_payments_amount", labels)]


@pytest.fixture(scope="module")
def worker_ran(served, migrated, redis_url):
    """One job run by a real `flask worker --burst` writing into the web's directory."""
    from redis import Redis
    from rq import Queue

    redis = Redis.from_url(redis_url)
    redis.flushdb()
    Queue("default", connection=redis).enqueue(tasks.REAP_IDEMPOTENCY_KEYS)
    env = {**os.environ, "APP_ENV": "development", "FLASK_APP": "wsgi", "DATABASE_URL": migrated,
           "REDIS_URL": redis_url, "PROMETHEUS_MULTIPROC_DIR": str(served.directory)}
    result = subprocess.run([sys.executable, "-m", "flask", "worker", "--burst"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    redis.flushdb()
    redis.close()
    assert result.returncode == 0, result.stderr[-2000:]


def test_flask_worker_writes_where_the_web_sums(served, worker_ran):
    mine = [p.name for p in served.directory.glob("counter_rq-*.db") if p.name != "counter_rq-elsewhere-7.db"]
    assert len(mine) == 1 and re.fullmatch(r"counter_rq-[A-Za-z0-9.-]+-\d+\.db", mine[0]), mine
    figures = scrape(served)
    assert figures[("marketplace_jobs_total", (("job", tasks.REAP_IDEMPOTENCY_KEYS), ("outcome", "succeeded")))] == 1
    assert figures[("marketplace_job_duration_seconds_count", (("job", tasks.REAP_IDEMPOTENCY_KEYS),))] == 1


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}


def queried_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return {m.group(1) for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", expr)
            if not m.group(2) and m.group(1).lower() not in PROMQL_WORDS}


def exposed_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][\w:]*", line).group())
    return names


def test_queried_metrics_reads_promql():
    assert queried_metrics('histogram_quantile(0.99, sum by (le, endpoint) (rate(http_request_duration_seconds_bucket'
                           '{endpoint!="/metrics"}[$__rate_interval])))') == {"http_request_duration_seconds_bucket"}
    assert queried_metrics('sum(marketplace_movements{status="x"}) or vector(0)') == {"marketplace_movements"}
    assert queried_metrics("a_total / clamp_min(b_total, 1e-9)") == {"a_total", "b_total"}


def dashboard_queries() -> set[str]:
    """The metric names docs/grafana-dashboard.json queries (checking the dashboard's shape)."""
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    queried = set()
    for panel in (p for p in dashboard["panels"] if p["type"] != "row"):
        assert panel["targets"] and panel["datasource"]["type"] == "prometheus", panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
        for target in panel["targets"]:
            names = queried_metrics(target["expr"])
            assert names, (panel["title"], target["expr"])
            queried |= names
    # What the issue asks it to show is there.
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "marketplace_payments_amount",
            "marketplace_refunds_amount", "marketplace_payouts_amount",
            "marketplace_webhook_oldest_unprocessed_age_seconds", "marketplace_webhook_last_processed_lag_seconds",
            "marketplace_outbox_undelivered", "marketplace_outbox_oldest_undelivered_age_seconds",
            "marketplace_movements_needing_attention", "marketplace_jobs_total"} <= queried
    return queried


def test_the_grafana_dashboard_queries_only_what_metrics_exposes(served, worker_ran):
    requests.get(f"{served.url}/healthz", timeout=10)
    assert dashboard_queries() - exposed_names(scrape_text(served)) == set()
