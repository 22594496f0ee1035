"""/healthz, /readyz, /metrics and the OpenAPI document."""
import re

from tests.conftest import make_app


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_inline_needs_only_the_database(client):
    body = client.get("/readyz").get_json()
    assert body == {"status": "ready", "checks": {"database": "ok", "redis": "not_configured"}}


def test_readyz_checks_redis(redis_app):
    body = redis_app.test_client().get("/readyz").get_json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_503_names_redis(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "not_ready" and "redis" in error["message"] and "database" not in error["message"]
    assert error["details"]["redis"] == "unreachable"


def test_readyz_503_names_the_database(migrated):
    broken = make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with broken.app_context():
        response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["details"]["database"] == "unreachable"
    assert "database" in response.get_json()["error"]["message"]


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/auth/me")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="/healthz",method="GET",status="200"} 2.0' in text
    assert 'http_requests_total{endpoint="/api/auth/me",method="GET",status="401"} 1.0' in text
    assert 'http_request_duration_seconds_count{endpoint="/healthz",method="GET"} 2.0' in text


def _documented_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api-docs."):
            continue
        # flask-smorest documents <int:id> as {id}
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield path, method.lower()


def test_openapi_documents_every_endpoint_with_errors(client, app):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert set(spec["components"]["schemas"]["ErrorEnvelope"]["properties"]) == {"error"}
    routes = list(_documented_routes(app))
    assert len(routes) >= 6
    for path, method in routes:
        assert path in spec["paths"], path
        operation = spec["paths"][path][method]
        assert "default" in operation["responses"], (path, method)
        assert any(code.startswith("2") for code in operation["responses"]), (path, method)


def test_protected_operations_declare_bearer_auth_and_401(client):
    spec = client.get("/openapi.json").get_json()
    me = spec["paths"]["/api/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]
    register = spec["paths"]["/api/auth/register"]["post"]
    assert {"201", "409", "422"} <= set(register["responses"])


def test_swagger_ui_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()
