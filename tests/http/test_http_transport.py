"""The transport under the HTTP client: what it keeps from `requests` (query encoding, gzip,
redirects, proxies from the environment, TLS verification) and what it adds (kept-alive
connections), against small local servers."""

from __future__ import annotations

import gzip
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from threadline.http import BearerAuth, Transport


class Recorder(BaseHTTPRequestHandler):
    """Answers every GET with what it saw: the request line's target, headers and client port.
    `/gzip` answers gzip-compressed; `/to?url=...` redirects there."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.startswith("/to?url="):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to?url="):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"target": self.path, "headers": dict(self.headers), "port": self.client_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/gzip":
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def url() -> Iterator[str]:
    yield from serve()


@pytest.fixture
def other() -> Iterator[str]:
    yield from serve()


def test_none_query_values_are_left_out_and_lists_repeat(url):
    answer = Transport().get(f"{url}/p", params={"a": 1, "skip": None, "tag": ["x", "y z"]}).json()
    assert answer["target"] == "/p?a=1&tag=x&tag=y+z"


def test_a_gzip_body_is_decoded(url):
    answer = Transport().get(f"{url}/gzip")
    assert answer.json()["target"] == "/gzip"


def test_one_connection_is_kept_alive_across_requests(url):
    transport = Transport()
    ports = {transport.get(f"{url}/p").json()["port"] for _ in range(5)}
    assert len(ports) == 1


def test_auth_signs_every_request_and_the_transport_headers_go_along(url):
    transport = Transport()
    transport.headers["X-Client"] = "threadline-test"
    seen = transport.get(f"{url}/p", auth=BearerAuth("tok-123")).json()["headers"]
    assert seen["Authorization"] == "Bearer tok-123" and seen["X-Client"] == "threadline-test"


def test_a_redirect_keeps_the_credentials_on_the_same_host_only(url, other):
    transport = Transport()
    same = transport.get(f"{url}/to?url=/landed", auth=BearerAuth("tok-123")).json()
    elsewhere = transport.get(f"{url}/to?url={other}/landed", auth=BearerAuth("tok-123"))
    assert same["target"] == "/landed" and same["headers"]["Authorization"] == "Bearer tok-123"
    assert elsewhere.url == f"{other}/landed" and "Authorization" not in elsewhere.json()["headers"]


def test_response_hooks_see_every_response_and_may_change_it(url):
    transport = Transport()
    transport.hooks["response"].append(lambda r, *a, **k: r.headers.__setitem__("Retry-After", "3"))
    assert transport.get(f"{url}/p").headers["retry-after"] == "3"


def test_http_proxy_from_the_environment_carries_the_request(url, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    seen = Transport().get("http://api.example.invalid/v2/contacts?limit=5").json()
    assert seen["target"] == "http://api.example.invalid/v2/contacts?limit=5"  # the absolute URL, as to a proxy


def test_no_proxy_sends_directly(url, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert Transport().get(f"{url}/p").json()["target"] == "/p"


def test_a_certificate_that_does_not_verify_is_refused(tmp_path: Path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for url in serve(context):
        with pytest.raises(requests.exceptions.SSLError):
            Transport().get(f"{url}/p", timeout=(5, 5))


def test_a_refused_connection_is_a_requests_connection_error():
    with pytest.raises(requests.ConnectionError, match="refused"):
        Transport().get("http://127.0.0.1:9/p", timeout=(2, 2))
