"""direct_mail under the audience destination contract suite, writing into a temporary folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from threadline.testing import AudienceContract
from threadline_direct_mail import DirectMail, latest_export


class TestDirectMailContract(AudienceContract):
    destination = DirectMail
    bad_config = {"folder": "/dev/null/mail"}  # a folder that cannot be created

    def config(self, sandbox: Any, tmp_path: Path) -> dict[str, Any]:
        return {"folder": str(tmp_path / "mail")}

    def member_key(self, member: dict[str, Any]) -> str:
        return member["member_id"]  # a file holds names and addresses, not hashes

    def platform_members(self, sandbox: Any, config: Any) -> set[str]:
        latest = latest_export(config.folder, "contract_audience")
        if latest is None:
            return set()
        with latest.open(newline="", encoding="utf-8") as handle:
            return {row["member_id"] for row in csv.DictReader(handle)}

    def arrange_rejection(self, sandbox: Any, member: dict[str, Any]) -> str:
        pytest.skip("a file refuses no row by itself: the only rejections (no postal address, no name) follow from a "
                    "member's data, which this hook cannot change; test_direct_mail_export covers them")
