"""simple-salesforce (from PyPI, unmodified) against the sandbox, as a new user would point it.

simple-salesforce always speaks https://, so the sandbox is served here behind TLS with a
throwaway CA (trustme) that requests trusts through REQUESTS_CA_BUNDLE, as a user trusts a
corporate proxy's CA. Nothing in the client is patched.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
import requests

simple_salesforce = pytest.importorskip("simple_salesforce", reason="the dev extra installs simple-salesforce")
trustme = pytest.importorskip("trustme", reason="the dev extra installs trustme")

from simple_salesforce import Salesforce  # noqa: E402
from simple_salesforce.exceptions import SalesforceMalformedRequest  # noqa: E402

from threadline_salesforce.source import CURRENT_API_VERSION, DEFAULT_OBJECTS  # noqa: E402
from threadline_salesforce.sandbox import SalesforceSandbox  # noqa: E402

CONTACTS = 60


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SalesforceSandbox]:
    # pages of 25, so query_all follows nextRecordsUrl
    with SalesforceSandbox(contacts=CONTACTS, max_batch_size=25) as running:
        yield running


@pytest.fixture(scope="module")
def https_url(sandbox: SalesforceSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(https base URL of the sandbox, the CA file that trusts it)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    # the sandbox's own request handler, on a listening socket that speaks TLS
    server = ThreadingHTTPServer(("127.0.0.1", 0), sandbox._server.RequestHandlerClass)  # noqa: SLF001
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(bundle)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def session(sandbox: SalesforceSandbox, https_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(instance URL, access token): the OAuth refresh-token flow, over the trusted HTTPS."""
    url, bundle = https_url
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    token = requests.post(f"{url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": sandbox.REFRESH_TOKEN,
        "client_id": sandbox.CLIENT_ID, "client_secret": sandbox.CLIENT_SECRET,
    }, timeout=10).json()["access_token"]
    return url, token


@pytest.fixture
def sf(session: tuple[str, str]) -> Salesforce:
    url, token = session
    return Salesforce(instance_url=url, session_id=token)


def live_ids(sandbox: SalesforceSandbox, obj: str) -> list[str]:
    return [r["Id"] for r in sandbox.records(obj, include_deleted=False)]


def test_query_with_simple_salesforces_trailing_slash_is_answered(sf, sandbox):
    found = sf.query("SELECT Id, Email FROM Contact LIMIT 5")
    assert found["totalSize"] == 5 and len(found["records"]) == 5
    assert sandbox.requests_to("/services/data/v59.0/query/")  # the path it asked for


@pytest.mark.parametrize("obj", DEFAULT_OBJECTS)
def test_query_all_pages_through_every_object_the_connector_reads(sf, sandbox, obj):
    fields = ", ".join(f["name"] for f in getattr(sf, obj).describe()["fields"] if f["type"] != "address")
    live = sf.query_all(f"SELECT {fields} FROM {obj} ORDER BY SystemModstamp ASC, Id ASC")
    assert [r["Id"] for r in live["records"]] == live_ids(sandbox, obj)
    everything = sf.query_all(f"SELECT Id, IsDeleted FROM {obj}", include_deleted=True)
    assert sorted(r["Id"] for r in everything["records"]) == sorted(r["Id"] for r in sandbox.records(obj))


def test_count_answers_the_number_of_records(sf, sandbox):
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == len(live_ids(sandbox, "Contact"))
    emails = sum(1 for r in sandbox.records("Contact", include_deleted=False) if r["Email"] is not None)
    assert sf.query("SELECT COUNT(Email) FROM Contact")["records"][0]["expr0"] == emails


def test_conditions_joined_by_and_filter_as_salesforce_does(sf, sandbox):
    contacts = sandbox.records("Contact", include_deleted=False)
    since = contacts[len(contacts) // 2]["SystemModstamp"]
    soql = (f"SELECT Id FROM Contact WHERE SystemModstamp >= {since.replace('.000+0000', 'Z')} "
            "AND HasOptedOutOfEmail = false ORDER BY Id DESC")
    expected = sorted((r["Id"] for r in contacts if r["SystemModstamp"] >= since and not r["HasOptedOutOfEmail"]),
                      reverse=True)
    assert [r["Id"] for r in sf.query_all(soql)["records"]] == expected


def test_the_connectors_own_incremental_query_reads_the_same_through_simple_salesforce(sf, sandbox):
    contacts = sandbox.records("Contact", include_deleted=False)
    since = contacts[10]["SystemModstamp"]
    soql = f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= {since} ORDER BY SystemModstamp ASC, Id ASC"
    assert [r["Id"] for r in sf.query_all(soql)["records"]] == [r["Id"] for r in contacts if r["SystemModstamp"] >= since]


def test_a_query_the_sandbox_does_not_understand_is_salesforces_malformed_query(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Contact GROUP BY Email")
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_a_quoted_datetime_is_refused_as_salesforce_refuses_it(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Contact WHERE SystemModstamp >= '2024-01-01T00:00:00Z'")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_a_retired_api_version_is_gone_and_the_default_is_current(session):
    url, token = session
    old = Salesforce(instance_url=url, session_id=token, version="30.0")
    with pytest.raises(simple_salesforce.exceptions.SalesforceGeneralError) as caught:
        old.query("SELECT Id FROM Contact LIMIT 1")
    assert caught.value.status == 410
    current = Salesforce(instance_url=url, session_id=token, version=CURRENT_API_VERSION[1:])
    assert current.query("SELECT COUNT() FROM Contact")["totalSize"] > 0
