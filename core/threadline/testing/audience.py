"""The audience destination contract suite: subclass `AudienceContract`, name the destination
and its sandbox, say how to configure it and how to read the platform's members back, and
pytest checks the push contract against the real sandbox over real sockets::

    from threadline.testing import AudienceContract

    class TestMeta(AudienceContract):
        destination = MetaAudiences
        sandbox = MetaSandbox
        bad_config = {"audience_id": "999"}          # check() must fail naming the field
        credential_field = "access_token"
        data_path = "/v21.0/"                         # faults go to requests under this path

        def config(self, sandbox):
            return {"base_url": sandbox.base_url, "access_token": sandbox.TOKEN, ...}

        def platform_members(self, sandbox, config):  # keys of who the platform holds now
            return sandbox.audience_hashes(config.audience_id)

The members are keyed by the SHA-256 of their normalized email unless the class overrides
`member_key` (a direct-mail file, say, is keyed by member id).

What it checks (one test each): the spec is strict and documented; `check` passes on good
config, fails naming the field on bad config and on a revoked credential; the class says its
channel, batch size and modes; `prepare` keeps every member in order with `member_id` first
and lets no plain email, phone or name through outside `plain_columns`; a push larger than a
batch adds every member, each request within `max_batch_rows`; a diff removes who left and
keeps the rest; a mirror leaves exactly the new members; no request body carries a member's
plain email (unless the destination declares it plain); transient faults (503, 429, a dropped
connection) are retried; a permanent error is a ThreadlineError naming the destination; and,
where the class says how, a credential that expires mid-push is renewed and a row the
platform rejects is reported with the platform's reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from pydantic import BaseModel

from threadline.activation import sha256_hex
from threadline.contracts import (
    MEMBER_SCHEMA,
    AudienceDestination,
    AudienceTarget,
    PushMode,
    PushReport,
    ThreadlineError,
)
from threadline.sandbox.faults import Fault
from threadline.testing import spec as specs

CHANNELS = ("advertising", "email", "sms", "direct_mail")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

DEFAULT_TRANSIENT_FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503, "times": 2, "after": 1},
    {"kind": "rate_limit", "retry_after": 0, "times": 2, "after": 1},
    {"kind": "drop", "times": 1, "after": 1},
]
FIRST_NAMES = ["Kelly", "José", "Anne-Marie", "Liam", "Zoë", "Noah", "Ava", "Mia", "O'Neil", "Chen"]
LAST_NAMES = ["Neal", "García", "Smith", "O'Brien", "Müller", "Jones", "Brown", "Lee", "Wilson", "Taylor"]


def sample_members(start: int, count: int) -> pa.Table:
    """`count` members numbered from `start`, shaped as the profile store hands them over."""
    rows = []
    for i in range(start, start + count):
        rows.append({
            "member_id": f"p{i:06d}",
            "email": f"member.{i}@example.com",
            "phone": f"+1512555{i % 10000:04d}",
            "first_name": FIRST_NAMES[i % 10].lower(),
            "last_name": LAST_NAMES[(i // 10) % 10].lower(),
            "address_line1": f"{100 + i} main st",
            "city": "austin",
            "region": "TX",
            "postal_code": f"{78700 + i % 100}",
            "country": "US",
            "birth_date": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
        })
    return pa.Table.from_pylist(rows, schema=MEMBER_SCHEMA)


class AudienceContract:
    """Base class of an audience destination's contract tests (see the module docstring)."""

    destination: ClassVar[type[AudienceDestination]]
    sandbox: ClassVar[type | None] = None  # a Sandbox subclass; None for file-based destinations
    sandbox_options: ClassVar[dict[str, Any]] = {}
    bad_config: ClassVar[dict[str, Any]] = {}  # field (dotted) → a value `check` must reject
    credential_field: ClassVar[str | None] = None  # the field a refused credential is reported on
    data_path: ClassVar[str] = ""  # faults are injected into requests whose path starts with this
    batch_rows: ClassVar[int | None] = None  # rows per call in the suite (default: max_batch_rows, at most 40)
    transient_faults: ClassVar[list[dict[str, Any]]] = DEFAULT_TRANSIENT_FAULTS
    readme: ClassVar[Path | None] = None

    # ---- what a destination's test class implements

    def config(self, sandbox: Any, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must define config(self, sandbox, tmp_path)")

    def platform_members(self, sandbox: Any, config: BaseModel) -> set[str]:
        """Keys (see `member_key`) of every member the platform's audience holds now."""
        raise NotImplementedError(f"{type(self).__name__} must define platform_members(self, sandbox, config)")

    def member_key(self, member: dict[str, Any]) -> str:
        return sha256_hex(member["email"].strip().lower())

    def revoke(self, sandbox: Any) -> None:
        revoke = getattr(sandbox, "revoke_credentials", None)
        if revoke is None:
            pytest.skip("the sandbox cannot revoke credentials (it has no revoke_credentials())")
        revoke()

    def expire_credentials(self, sandbox: Any) -> None:
        """Make the credential in use expire now (a later request must renew it)."""
        pytest.skip("the test class does not say how to expire a credential (expire_credentials)")

    def arrange_rejection(self, sandbox: Any, member: dict[str, Any]) -> str:
        """Make the platform reject `member`'s row; return (part of) the reason it will give."""
        pytest.skip("the test class does not say how to make the platform reject a row (arrange_rejection)")

    # ---- fixtures and helpers

    @pytest.fixture
    def contract_sandbox(self, tmp_path: Path) -> Iterator[Any]:
        if self.sandbox is None:
            yield None
            return
        box = self.sandbox(**self.sandbox_options)
        box.start()
        try:
            yield box
        finally:
            box.stop()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "transient_fault" in metafunc.fixturenames:
            faults = self.transient_faults
            metafunc.parametrize("transient_fault", faults, ids=[f"{f['kind']}-{f.get('status', '')}" for f in faults])
        if "bad_field" in metafunc.fixturenames:
            fields = list(self.bad_config) or [None]
            metafunc.parametrize("bad_field", fields, ids=[str(f) for f in fields])

    def _config(self, sandbox: Any, tmp_path: Path, raw: dict[str, Any] | None = None) -> BaseModel:
        raw = raw if raw is not None else self.config(sandbox, tmp_path)
        return self.destination.spec.model_validate(raw, context={"base_dir": tmp_path})

    def _rows(self) -> int:
        return self.batch_rows or min(self.destination.max_batch_rows, 40)

    def push(self, config: BaseModel, adds: pa.Table | None = None, removes: pa.Table | None = None,
             mode: PushMode | None = None, *, between_batches: Any = None) -> tuple[PushReport, list[Any]]:
        """Push like the runner does: prepare, removes then adds in batches, finish. The mode
        defaults to a diff, or to the destination's own mode when it cannot diff (a mirror-only
        file export)."""
        dest = self.destination()
        mode = mode or (PushMode.DIFF if PushMode.DIFF in dest.modes else dest.modes[0])
        adds = adds if adds is not None else sample_members(0, 0)
        removes = removes if removes is not None else sample_members(0, 0)
        target = AudienceTarget("contract", "contract_audience", mode, "run-1", adds.num_rows, removes.num_rows)
        writer = dest.open_audience(config, target)
        results = []
        try:
            for method, members in (("remove", removes), ("add", adds)):
                if not members.num_rows:
                    continue
                prepared = dest.prepare(config, members)
                for offset in range(0, prepared.num_rows, self._rows()):
                    results.append(getattr(writer, method)(prepared.slice(offset, self._rows())))
                    if between_batches is not None:
                        between_batches()
            return writer.finish(), results
        except BaseException:
            writer.abort()
            raise

    def keys(self, members: pa.Table) -> set[str]:
        return {self.member_key(m) for m in members.to_pylist()}

    # ---- the contract

    def test_config_spec_is_strict_and_documented(self, contract_sandbox: Any, tmp_path: Path) -> None:
        spec = self.destination.spec
        assert issubclass(spec, BaseModel) and spec.model_config.get("extra") == "forbid", (
            f"{self.destination.name}: the spec must forbid unknown fields (subclass threadline.Spec)")
        spec.model_json_schema()
        self._config(contract_sandbox, tmp_path)
        readme = self.readme or specs.plugin_readme(self.destination)
        missing = specs.undocumented(spec, readme)
        assert not missing, (
            f"{self.destination.name}: config field(s) {missing} have neither a Field(description=...) nor a row "
            f"in the config table of {readme or 'the README (none found)'}")

    def test_declares_channel_batch_size_and_modes(self) -> None:
        dest = self.destination
        assert dest.channel in CHANNELS, f"{dest.name}.channel must be one of {CHANNELS}, not {dest.channel!r}"
        assert isinstance(dest.max_batch_rows, int) and dest.max_batch_rows > 0, f"{dest.name}.max_batch_rows must be > 0"
        assert dest.modes and all(isinstance(m, PushMode) for m in dest.modes), f"{dest.name}.modes must be PushModes"

    def test_check_passes_on_good_config(self, contract_sandbox: Any, tmp_path: Path) -> None:
        self.destination().check(self._config(contract_sandbox, tmp_path))

    def test_check_fails_on_bad_config_naming_the_field(self, contract_sandbox: Any, tmp_path: Path,
                                                        bad_field: str | None) -> None:
        if bad_field is None:
            pytest.fail(f"{type(self).__name__}.bad_config is empty: give a field and a value check() must reject")
        raw = specs.set_path(self.config(contract_sandbox, tmp_path), bad_field, self.bad_config[bad_field])
        error = specs.config_error_from(lambda: self.destination().check(self._config(contract_sandbox, tmp_path, raw)),
                                        f"check() with a bad {bad_field!r}")
        assert specs.names_field(error, bad_field), (
            f"check() with a bad {bad_field!r} raised a ConfigError not naming it (field={error.field!r}): {error.render()}")

    def test_check_fails_on_revoked_credentials_naming_the_field(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if contract_sandbox is None:
            pytest.skip("no platform credential for a file-based destination")
        config = self._config(contract_sandbox, tmp_path)
        self.revoke(contract_sandbox)
        assert self.credential_field, f"set {type(self).__name__}.credential_field"
        error = specs.config_error_from(lambda: self.destination().check(config), "check() with a revoked credential")
        assert specs.names_field(error, self.credential_field), (
            f"check() with a revoked credential raised a ConfigError not naming {self.credential_field!r}: {error.render()}")

    def test_prepare_keeps_members_and_lets_no_plain_identifier_through(self, contract_sandbox: Any, tmp_path: Path) -> None:
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, 25)
        prepared = self.destination().prepare(config, members)
        assert isinstance(prepared, pa.Table), "prepare() must return a pyarrow.Table"
        assert prepared.column_names[0] == "member_id", "prepare() must keep member_id as the first column"
        assert prepared.column("member_id").to_pylist() == members.column("member_id").to_pylist(), (
            "prepare() must keep every member, in order")
        plain = set(self.destination.plain_columns)
        secrets = {v for c in ("email", "phone", "first_name", "last_name", "address_line1")
                   for v in members.column(c).to_pylist() if v and len(v) > 3}
        for name in prepared.column_names[1:]:
            if name in plain:
                continue
            for value in prepared.column(name).to_pylist():
                text = str(value) if value is not None else ""
                leaked = [s for s in secrets if s in text]
                assert not leaked, f"prepare() lets plain personal data through in column {name!r} (not in plain_columns)"

    def test_push_adds_every_member_within_the_batch_size(self, contract_sandbox: Any, tmp_path: Path) -> None:
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, self._rows() * 2 + 7)
        report, results = self.push(config, adds=members)
        assert self.platform_members(contract_sandbox, config) == self.keys(members), (
            "after a push the platform does not hold exactly the members added")
        assert report.sent == members.num_rows, f"finish() reports {report.sent} sent, not {members.num_rows}"
        assert report.accepted + report.rejected == report.sent, "finish(): accepted + rejected != sent"
        assert sum(r.accepted for r in results) + sum(len(r.rejected) for r in results) == members.num_rows
        if contract_sandbox is not None:
            assert contract_sandbox.requests, "no request reached the sandbox"

    def test_diff_removes_who_left_and_keeps_the_rest(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if PushMode.DIFF not in self.destination.modes:
            pytest.skip(f"{self.destination.name} only mirrors")
        config = self._config(contract_sandbox, tmp_path)
        first = sample_members(0, 30)
        self.push(config, adds=first)
        self.push(config, adds=sample_members(30, 5), removes=first.slice(0, 10))
        expected = self.keys(first.slice(10)) | self.keys(sample_members(30, 5))
        assert self.platform_members(contract_sandbox, config) == expected, (
            "after a diff (10 removed, 5 added) the platform does not hold exactly the remaining members")

    def test_mirror_leaves_exactly_the_new_members(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if PushMode.MIRROR not in self.destination.modes:
            pytest.skip(f"{self.destination.name} cannot mirror")
        config = self._config(contract_sandbox, tmp_path)
        self.push(config, adds=sample_members(0, 30))
        latest = sample_members(20, 30)
        self.push(config, adds=latest, mode=PushMode.MIRROR)
        assert self.platform_members(contract_sandbox, config) == self.keys(latest), (
            "after a mirror push the platform does not hold exactly the pushed members")

    def test_no_plain_email_leaves_the_machine(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if contract_sandbox is None or "email" in self.destination.plain_columns:
            pytest.skip("this destination sends emails in the clear by design (an email tool or a file)")
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, 12)
        self.push(config, adds=members)
        emails = members.column("email").to_pylist()
        for request in contract_sandbox.requests:
            sent = request.body + " " + request.path + " " + str(request.query)
            assert not any(e in sent for e in emails), f"a plain email left in a request to {request.path}"

    def test_transient_fault_is_retried(self, contract_sandbox: Any, tmp_path: Path, transient_fault: dict[str, Any]) -> None:
        if contract_sandbox is None:
            pytest.skip("no server to inject faults into")
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, self._rows() * 2)
        fault = contract_sandbox.inject(Fault(**{"path": self.data_path, **transient_fault}))
        try:
            self.push(config, adds=members)
        except ThreadlineError as exc:
            raise AssertionError(f"a transient fault ({transient_fault}) was not retried: {exc.render()}") from None
        assert fault.fired == fault.times, f"the fault fired {fault.fired} of {fault.times} times (set data_path?)"
        assert self.platform_members(contract_sandbox, config) == self.keys(members)

    def test_permanent_error_stops_with_a_clear_message(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if contract_sandbox is None:
            pytest.skip("no server to inject faults into")
        config = self._config(contract_sandbox, tmp_path)
        contract_sandbox.inject(Fault(kind="status", status=404, times=0, path=self.data_path))
        with pytest.raises(Exception) as caught:
            self.push(config, adds=sample_members(0, 5))
        assert isinstance(caught.value, ThreadlineError), (
            f"a 404 surfaced as {type(caught.value).__name__}, not as a classified ThreadlineError")
        text = caught.value.render()
        assert "404" in text and self.destination.name in text, f"the error names neither the status nor the destination: {text}"

    def test_credential_expiring_mid_push_is_renewed(self, contract_sandbox: Any, tmp_path: Path) -> None:
        if contract_sandbox is None:
            pytest.skip("no platform credential for a file-based destination")
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, self._rows() * 3)
        fired = []

        def expire_once() -> None:
            if not fired:
                fired.append(True)
                self.expire_credentials(contract_sandbox)

        self.push(config, adds=members, between_batches=expire_once)
        assert self.platform_members(contract_sandbox, config) == self.keys(members), (
            "members were lost when the credential expired mid-push")

    def test_rejected_row_is_reported_with_the_platform_reason(self, contract_sandbox: Any, tmp_path: Path) -> None:
        config = self._config(contract_sandbox, tmp_path)
        members = sample_members(0, 10)
        bad = members.slice(3, 1).to_pylist()[0]
        reason = self.arrange_rejection(contract_sandbox, bad)
        report, results = self.push(config, adds=members)
        rejected = [r for result in results for r in result.rejected]
        assert [r.member_id for r in rejected] == [bad["member_id"]], (
            f"expected exactly {bad['member_id']} rejected, got {[r.member_id for r in rejected]}")
        assert reason in rejected[0].reason, f"the rejection does not carry the platform's reason {reason!r}: {rejected[0].reason!r}"
        assert report.rejected == 1 and report.accepted == members.num_rows - 1
        assert bad["email"] not in rejected[0].reason, "a rejection reason must never quote the identifier"
