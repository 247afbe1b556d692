"""Meta's official Python client (facebook_business, unmodified) against the sandbox on 127.0.0.1.

The SDK is pointed at the sandbox through its session's `GRAPH` root, as a user points it at a
proxy; nothing else is changed, and the crash reporter (which posts to Meta) is never enabled.
Every write the destination makes goes through the SDK's own calls: add (POST users), remove
(DELETE users: the SDK puts the payload in the query string) and replace (POST usersreplace),
each with an upload session, with the rows `prepare` makes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.apiconfig import ads_api_config
from threadline.testing import sample_members
from threadline_meta_audiences import MetaAudiences, MetaAudiencesConfig
from threadline_meta_audiences.normalize import schema_keys
from threadline_meta_audiences.sandbox import MetaSandbox


@pytest.fixture
def audience(meta: MetaSandbox) -> Iterator[CustomAudience]:
    session = FacebookSession(MetaSandbox.APP_ID, MetaSandbox.APP_SECRET, MetaSandbox.ACCESS_TOKEN)
    session.GRAPH = meta.base_url  # an instance setting: the SDK joins it with the version and path
    api = FacebookAdsApi(session, api_version=ads_api_config["API_VERSION"])
    yield CustomAudience(MetaSandbox.AUDIENCE_ID, api=api)
    session.requests.close()


def rows_and_schema(start: int, count: int) -> tuple[list[str], list[list[str]]]:
    """What the destination sends for `count` members: its schema and hashed rows ("" = no value)."""
    config = MetaAudiencesConfig(access_token="t", audience_id="1")
    prepared = MetaAudiences().prepare(config, sample_members(start, count)).to_pylist()
    keys = schema_keys(config)
    return keys, [[row[k] or "" for k in keys] for row in prepared]


def session_of(session_id: int, batch_seq: int, last: bool, total: int) -> dict[str, object]:
    return {"session_id": session_id, "batch_seq": batch_seq, "last_batch_flag": last, "estimated_num_total": total}


def test_api_get_with_the_sdks_trailing_slash_reads_the_audience(audience: CustomAudience):
    read = audience.api_get(fields=[CustomAudience.Field.name, CustomAudience.Field.subtype,
                                    CustomAudience.Field.approximate_count_lower_bound])
    assert read[CustomAudience.Field.subtype] == "CUSTOM"
    assert read[CustomAudience.Field.name] == "Loyal customers"


def test_add_users_then_remove_users_with_the_payload_in_the_query_string(audience: CustomAudience, meta: MetaSandbox):
    schema, rows = rows_and_schema(0, 30)
    added = audience.add_users(schema, rows, is_raw=True, pre_hashed=True,
                               session=session_of(11, 1, True, len(rows))).json()
    assert (added["num_received"], added["num_invalid_entries"]) == (30, 0)
    emails = schema.index("EMAIL")
    assert meta.audience_hashes() == {r[emails] for r in rows}

    gone, kept = rows[:10], rows[10:]
    removed = audience.remove_users(schema, gone, is_raw=True, pre_hashed=True,
                                    session=session_of(12, 1, True, len(gone))).json()
    assert (removed["num_received"], removed["num_invalid_entries"]) == (10, 0)
    assert meta.audience_hashes() == {r[emails] for r in kept}


def test_users_replace_in_a_multi_batch_session_replaces_the_audience(audience: CustomAudience, meta: MetaSandbox):
    schema, before = rows_and_schema(100, 5)
    audience.add_users(schema, before, is_raw=True, pre_hashed=True)
    _, after = rows_and_schema(200, 20)
    for seq, batch in enumerate((after[:12], after[12:]), start=1):
        params = CustomAudience.format_params(schema, batch, is_raw=True, pre_hashed=True,
                                              session=session_of(21, seq, seq == 2, len(after)))
        answer = audience.create_users_replace(params=params).export_all_data()
        assert answer["num_received"] == len(batch) and answer["num_invalid_entries"] == 0
    emails = schema.index("EMAIL")
    assert meta.audience_hashes() == {r[emails] for r in after}
