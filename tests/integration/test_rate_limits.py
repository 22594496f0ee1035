"""Rate limits on registration, token creation and checkout: 429 in the envelope with Retry-After."""
import pytest

from tests.conftest import make_app


def _register(client, n):
    return client.post("/api/auth/register", json={"email": f"rl{n}@example.com",
                                                    "password": "long enough password", "role": "shopper"})


def test_token_creation_is_limited_per_ip(app, client):
    app.config["RATELIMIT_TOKENS"] = "3 per minute"
    statuses = [client.post("/api/auth/tokens", json={"email": "x@example.com", "password": "nope"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    response = client.post("/api/auth/tokens", json={"email": "x@example.com", "password": "nope"})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    other_ip = client.post("/api/auth/tokens", json={"email": "x@example.com", "password": "nope"},
                           environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_ip.status_code == 401


def test_registration_is_limited(app, client):
    app.config["RATELIMIT_REGISTER"] = "2 per hour"
    assert [_register(client, n).status_code for n in range(3)] == [201, 201, 429]


def test_limits_are_shared_through_redis(migrated, redis_url):
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    apps = [make_app(migrated, REDIS_URL=redis_url, RATELIMIT_TOKENS="2 per minute") for _ in range(2)]
    statuses = []
    for i in range(3):
        app = apps[i % 2]  # two processes behind a load balancer
        with app.app_context():
            statuses.append(app.test_client().post("/api/auth/tokens", json={"email": "a@example.com",
                                                                               "password": "x"}).status_code)
    assert statuses == [401, 401, 429]
    Redis.from_url(redis_url).flushdb()
