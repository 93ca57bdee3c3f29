"""Health, readiness, metrics, OpenAPI, body limits, the first admin key and the keys CLI."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.client import Client


def test_health_and_ready(server):
    with Client(server.url) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready()
    assert httpx.get(f"{server.url}/ready").json() == {"ready": True}  # what is loaded: admins only
    body = httpx.get(f"{server.url}/v1/status", headers={"Authorization": f"Bearer {server.admin_key}"}).json()
    assert body["ready"] and {c["campaign"] for c in body["campaigns"]} >= {"knn", "mf"}


def test_metrics_count_requests_per_route_and_campaign(server):
    with server.client(server.read_key) as client:
        for _ in range(3):
            client.recommend("movies", "knn", user_id="1", num_results=3)
        text = Client(server.url).metrics()
    counts = re.findall(r'recsmith_requests_total\{[^}]*campaign="knn"[^}]*route="([^"]+)"[^}]*status="200"\} (\S+)',
                        text)
    assert any(route.endswith("/recommendations") and float(n) >= 3 for route, n in counts), text[:2000]
    assert 'recsmith_request_duration_seconds_bucket{campaign="knn"' in text
    assert re.search(r'recsmith_campaign_info\{campaign="knn",dataset_group="movies",recipe="item-knn",'
                     rf'solution_version="{server.versions["item-knn"]}"\}} 1\.0', text)


def test_openapi_documents_the_routes(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    assert "/v1/dataset-groups/{group}/campaigns/{campaign}/recommendations" in paths
    assert "/v1/dataset-groups/{group}/campaigns/{campaign}/personalized-ranking" in paths
    assert "/v1/dataset-groups/{group}/filters/{name}" in paths
    assert httpx.get(f"{server.url}/docs").status_code == 404  # Swagger UI only with RECSMITH_DOCS=1


def test_bodies_over_the_limit_are_refused(server):
    big = b'{"user_id": "1", "exclude": ["' + b"x" * 2_000_000 + b'"]}'
    response = httpx.post(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations", content=big,
                          headers={"Authorization": f"Bearer {server.read_key}", "Content-Type": "application/json"})
    assert response.status_code == 413 and "too large" in response.json()["error"]["message"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"user_id": "1", "exclude": ["'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"]}'

    streamed = httpx.post(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations", content=chunks(),
                          headers={"Authorization": f"Bearer {server.read_key}", "Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_first_serve_on_an_empty_home_prints_an_admin_key_once(tmp_path, launch):
    home = tmp_path / "home"
    url, process = launch(home)
    key = Path(process.stdout.readline().strip()).read_text().strip()  # not a terminal: the key file's path
    assert key.startswith("rsk_")
    response = httpx.get(f"{url}/v1/dataset-groups/none/filters", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 404  # an admin key for every group: past auth, but the group does not exist
    process.terminate()
    process.wait(timeout=20)
    _, again = launch(home)
    again.terminate()
    again.wait(timeout=20)
    assert "rsk_" not in again.stdout.read()


def test_keys_cli(tmp_path):
    runner = CliRunner()
    env = {"RECSMITH_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["datasets", "load", "ml-latest-small", "-g", "movies"], env=env).exit_code == 0
    made = runner.invoke(app, ["keys", "create", "--role", "read", "-g", "movies", "--name", "web", "--json"], env=env)
    assert made.exit_code == 0, made.output
    assert '"key": "rsk_' in made.output
    key_id = re.search(r'"key_id": "([0-9a-f]+)"', made.output).group(1)
    listed = runner.invoke(app, ["keys", "list", "--json"], env=env)
    assert key_id in listed.output and "rsk_" not in listed.output and "secret" not in listed.output
    bad_role = runner.invoke(app, ["keys", "create", "--role", "root"], env=env)
    assert bad_role.exit_code == 1 and "unknown role 'root'" in bad_role.output
    assert runner.invoke(app, ["keys", "delete", key_id], env=env).exit_code == 0
    again = runner.invoke(app, ["keys", "delete", key_id], env=env)
    assert again.exit_code == 1 and "no API key" in again.output


def test_serve_refuses_a_port_in_use(server):
    port = server.url.rsplit(":", 1)[1]
    result = CliRunner().invoke(app, ["serve", "--port", port, "--workers", "2"],
                                env={"RECSMITH_HOME": str(server.home)})
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
