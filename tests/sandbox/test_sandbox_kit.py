"""The sandbox kit: a real server on loopback, faults on request, requests recorded."""

from __future__ import annotations

import requests
import pytest

from threadline.sandbox import CustomersSandbox, Fault, RemoteSandbox, Reply, Sandbox, SandboxRequest, route


class EchoSandbox(Sandbox):
    name = "echo"

    def seed_data(self) -> None:
        self.items = [{"id": i} for i in range(self.seed, self.seed + 3)]

    @route("GET", "/items")
    def items_route(self, req: SandboxRequest) -> Reply:
        return Reply.json({"data": self.items})

    @route("POST", "/items")
    def add(self, req: SandboxRequest) -> Reply:
        self.items.append(req.json())
        return Reply.json({"ok": True}, 201)


@pytest.fixture
def echo():
    with EchoSandbox(seed=10) as sandbox:
        yield sandbox


def get(sandbox: Sandbox, path: str, **kw):
    return requests.get(sandbox.base_url + path, timeout=5, **kw)


def test_serves_on_loopback_on_a_free_port(echo):
    assert echo.base_url.startswith("http://127.0.0.1:")
    assert not echo.base_url.endswith(":0")
    assert get(echo, "/items").json() == {"data": [{"id": 10}, {"id": 11}, {"id": 12}]}


def test_seeded_data_is_deterministic():
    one, two = CustomersSandbox(seed=3), CustomersSandbox(seed=3)
    assert one.customers == two.customers
    assert one.customers != CustomersSandbox(seed=4).customers


def test_unknown_route_answers_404_naming_the_routes(echo):
    response = get(echo, "/nope")
    assert response.status_code == 404
    assert "/items" in response.json()["routes"]


def test_records_method_path_query_and_body(echo):
    requests.post(echo.base_url + "/items?dry=1", json={"id": 99}, timeout=5)
    recorded = echo.requests_to("/items", "POST")
    assert len(recorded) == 1
    assert recorded[0].param("dry") == "1"
    assert recorded[0].body == '{"id": 99}'


def test_recorded_headers_and_query_mask_credentials(echo):
    get(echo, "/items?api_key=k-123456", headers={"Authorization": "Bearer tok-123456", "X-API-Key": "k-123456"})
    recorded = echo.requests[0]
    assert recorded.headers["authorization"] == "Bearer ***"
    assert recorded.headers["x-api-key"] == "***"
    assert recorded.query["api_key"] == ["***"]


def test_rate_limit_burst_answers_429_with_retry_after_then_recovers(echo):
    echo.inject("rate_limit", retry_after=1, times=2)
    statuses = [get(echo, "/items") for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "1"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_injected(echo, status):
    echo.inject("status", status=status)
    assert get(echo, "/items").status_code == status
    assert get(echo, "/items").status_code == 200


def test_fault_after_lets_the_first_requests_through(echo):
    echo.inject("status", status=500, after=2)
    assert [get(echo, "/items").status_code for _ in range(4)] == [200, 200, 500, 200]


def test_fault_limited_to_a_path_leaves_other_paths_alone(echo):
    echo.inject("status", status=500, path="/other")
    assert get(echo, "/items").status_code == 200
    assert len(echo.faults) == 1


def test_dropped_connection_raises_connection_error(echo):
    echo.inject("drop")
    with pytest.raises(requests.ConnectionError):
        get(echo, "/items")
    assert echo.requests[0].fault == "drop"


def test_timeout_fault_outlasts_the_read_timeout(echo):
    echo.inject("timeout", delay=0.3)
    with pytest.raises(requests.ReadTimeout):
        requests.get(echo.base_url + "/items", timeout=(1, 0.1))


def test_slow_fault_answers_after_the_delay(echo):
    echo.inject("slow", delay=0.1)
    assert get(echo, "/items").status_code == 200
    assert echo.requests[0].fault == "slow"


def test_malformed_json_and_html_bodies(echo):
    echo.inject("malformed_json")
    echo.inject("html")
    with pytest.raises(ValueError):
        get(echo, "/items").json()
    html = get(echo, "/items")
    assert html.headers["Content-Type"].startswith("text/html")


def test_expired_token_answers_401(echo):
    echo.inject("expired_token")
    response = get(echo, "/items")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_repeat_page_replays_the_previous_answer(echo):
    first = get(echo, "/items").json()
    requests.post(echo.base_url + "/items", json={"id": 50}, timeout=5)
    echo.inject("repeat_page")
    assert get(echo, "/items").json() == first


def test_faults_and_recordings_over_the_control_endpoint(echo):
    remote = RemoteSandbox(echo.base_url)
    remote.inject("status", status=502)
    assert get(echo, "/items").status_code == 502
    assert [r.status for r in remote.requests] == [502]
    remote.reset()
    assert remote.requests == []


def test_control_endpoint_rejects_unknown_fault_fields(echo):
    response = requests.post(echo.base_url + "/_sandbox/faults", json={"kind": "drop", "bogus": 1}, timeout=5)
    assert response.status_code == 400
    assert "bogus" in response.json()["error"]


def test_fault_round_trips_through_a_dict():
    fault = Fault(kind="rate_limit", retry_after=2, times=3)
    assert Fault.from_dict(fault.to_dict()) == fault


def test_stopped_sandbox_refuses_connections():
    sandbox = EchoSandbox().start()
    url = sandbox.base_url
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/items", timeout=2)


def test_cache_pages_serves_the_same_answer_again_without_running_the_route():
    from threadline.sandbox import Reply, Sandbox, SandboxRequest, route

    class Counting(Sandbox):
        name = "counting"

        def seed_data(self):
            self.built = 0

        @route("GET", "/items")
        def items(self, req: SandboxRequest) -> Reply:
            self.built += 1
            return Reply.json({"data": [{"id": 1}], "page": req.param("page")})

    import requests

    with Counting() as box:
        box.cache_pages = True
        first = requests.get(f"{box.base_url}/items?page=1", timeout=5)
        again = requests.get(f"{box.base_url}/items?page=1", timeout=5)
        other = requests.get(f"{box.base_url}/items?page=2", timeout=5)
        assert first.content == again.content and other.json()["page"] == "2"
        assert box.built == 2, "the repeated request was answered from the cache"
