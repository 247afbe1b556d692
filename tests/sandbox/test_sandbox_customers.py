"""The generic customers sandbox: auth, every pagination style, incremental filter, changes."""

from __future__ import annotations

import requests
import pytest

from threadline.sandbox import CustomersSandbox, RemoteSandbox

S = CustomersSandbox


@pytest.fixture
def crm():
    with CustomersSandbox(count=25) as sandbox:
        yield sandbox


def get(sandbox, params=None, headers=None):
    headers = {"Authorization": f"Bearer {S.TOKEN}"} if headers is None else headers
    return requests.get(sandbox.base_url + "/customers", params=params, headers=headers, timeout=5)


def test_requires_credentials(crm):
    assert get(crm, headers={}).status_code == 401


@pytest.mark.parametrize("headers,params", [
    ({"X-API-Key": S.API_KEY}, {}),
    ({}, {"api_key": S.API_KEY}),
])
def test_accepts_api_key_in_header_or_query(crm, headers, params):
    assert get(crm, params, headers).status_code == 200


def test_accepts_basic_auth(crm):
    response = requests.get(crm.base_url + "/customers", auth=(S.USERNAME, S.PASSWORD), timeout=5)
    assert response.status_code == 200


def test_oauth_token_endpoint_issues_a_working_token(crm):
    token = requests.post(crm.base_url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": S.CLIENT_ID, "client_secret": S.CLIENT_SECRET,
    }, timeout=5).json()["access_token"]
    assert get(crm, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_issued_tokens_expire():
    with CustomersSandbox(count=3, token_ttl=0) as crm:
        token = requests.post(crm.base_url + "/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": S.REFRESH_TOKEN,
        }, timeout=5).json()["access_token"]
        assert get(crm, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_revoked_credentials_are_refused(crm):
    crm.revoke_credentials()
    assert get(crm).status_code == 401


def test_offset_pages_cover_every_customer_once(crm):
    ids, offset = [], 0
    while True:
        data = get(crm, {"offset": offset, "limit": 10}).json()["data"]
        if not data:
            break
        ids += [c["id"] for c in data]
        offset += 10
    assert ids == [c["id"] for c in crm.customers]


def test_link_header_and_next_url_walk_to_the_end(crm):
    response, pages = get(crm, {"limit": 10}), 1
    while "next" in response.links:
        assert response.json()["next"] == response.links["next"]["url"]
        response = requests.get(response.links["next"]["url"], headers={"Authorization": f"Bearer {S.TOKEN}"}, timeout=5)
        pages += 1
    assert pages == 3
    assert response.json()["next"] is None


def test_cursor_in_body_and_header_agree(crm):
    response = get(crm, {"limit": 10})
    assert response.json()["next_cursor"] == response.headers["X-Next-Cursor"]
    second = get(crm, {"limit": 10, "cursor": response.json()["next_cursor"]}).json()
    assert second["offset"] == 10


def test_page_number_pagination(crm):
    body = get(crm, {"page": 3, "per_page": 10}).json()
    assert [c["id"] for c in body["data"]] == [21, 22, 23, 24, 25]
    assert body["next"] is None


def test_page_size_is_capped():
    with CustomersSandbox(count=30, max_page_size=7) as crm:
        assert len(get(crm, {"limit": 100}).json()["data"]) == 7


def test_updated_since_is_inclusive(crm):
    boundary = crm.customers[10]["updated_at"]
    data = get(crm, {"updated_since": boundary, "limit": 100}).json()["data"]
    assert data[0]["updated_at"] == boundary
    assert [c["id"] for c in data] == [c["id"] for c in crm.customers if c["updated_at"] >= boundary]


def test_changes_get_a_newer_updated_at_and_show_up_incrementally(crm):
    before = max(c["updated_at"] for c in crm.customers)
    crm.add_customers(2)
    crm.update_customers([1])
    crm.delete_customers([2])
    changed = get(crm, {"updated_since": before, "limit": 100}).json()["data"]
    assert {c["id"] for c in changed if c["updated_at"] > before} == {1, 26, 27}
    assert 2 not in {c["id"] for c in crm.customers}


def test_changes_over_the_control_endpoint(crm):
    result = RemoteSandbox(crm.base_url).control("customers", {"add": 1, "update": [3]})
    assert [c["id"] for c in result["added"]] == [26]
    assert crm.customers[-1]["id"] in (3, 26)
