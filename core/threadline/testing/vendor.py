"""Point a vendor's official client at a sandbox without changing the client.

Some official clients hard-code the vendor's host (tweepy sends to https://api.twitter.com)
or build it from an account name (zenpy: https://<subdomain>.zendesk.com). They all send
through a `requests.Session` they expose, so a test mounts a transport adapter on that session
for the vendor's root: requests to it go to the sandbox on 127.0.0.1 instead, with the same
path, query, headers and body, and the `Host` header the client's URL gives (a sandbox that
writes links, as Zendesk's `after_url`, can name the vendor's host with it). This is what a
proxy or an /etc/hosts entry would do; the client's own code, URLs and auth are untouched.

    client = tweepy.Client(bearer_token=XSandbox.BEARER_TOKEN)
    route_to_sandbox(client.session, "https://api.twitter.com", sandbox.base_url)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter


class SandboxAdapter(HTTPAdapter):
    """Sends requests for `vendor_root` to `sandbox_url` (the rest of the URL kept)."""

    def __init__(self, vendor_root: str, sandbox_url: str) -> None:
        super().__init__()
        self.vendor_root, self.sandbox_url = vendor_root.rstrip("/"), sandbox_url.rstrip("/")
        self.sent: list[str] = []  # the URLs as the client built them (tests read them)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        self.sent.append(url)
        carried = request.copy()  # the Host header stays the vendor's, as a proxy would keep it
        if url.startswith(self.vendor_root):
            carried.url = self.sandbox_url + url[len(self.vendor_root):]
            carried.headers.setdefault("Host", urlsplit(url).netloc)
        response = super().send(carried, *args, **kwargs)
        # The client sees its own request and URL, as behind a proxy (zenpy matches answers on them).
        response.request, response.url = request, url
        return response


def route_to_sandbox(session: requests.Session, vendor_root: str, sandbox_url: str) -> SandboxAdapter:
    """Mount a `SandboxAdapter` on `session` for `vendor_root`; returns it."""
    adapter = SandboxAdapter(vendor_root, sandbox_url)
    session.mount(vendor_root.rstrip("/") + "/", adapter)
    return adapter
