"""X under threadline's source contract suite, against its sandbox."""

from threadline.testing import SourceContract
from threadline_x import XSource
from threadline_x.sandbox import BRANDS, XSandbox, expected_user



class TestXContract(SourceContract):
    source = XSource
    sandbox = XSandbox
    sandbox_options = {"users": 400, "followers_limit": 100_000}
    bad_config = {"base_url": "http://127.0.0.1:9"}
    credential_field = "bearer_token"
    data_path = "/2/users"

    def config(self, sandbox):
        return {
            "base_url": f"{sandbox.base_url}/2", "bearer_token": sandbox.BEARER_TOKEN, "followers_of": list(BRANDS),
            "usernames": sandbox.usernames(150) + ["@nobody_here_00"], "page_size": 50, "backoff_base": 0.01,
        }

    def expected_records(self, sandbox):
        followers = [expected_user(u, followed_id=b) for b in BRANDS for u in sandbox.followers(b)]
        users = [expected_user(sandbox.by_username(n)) for n in sandbox.usernames(150)]
        return {"followers": followers, "users": users}
