"""TikTok's own Python SDK (tiktok-business-api-sdk-official 1.1.3, published by TikTok Pte. Ltd.,
unmodified) against the sandbox.

The SDK wraps the custom-audience reads the destination makes (`dmp/custom_audience/list/` to find
an audience by name, `dmp/custom_audience/get/` to check one) but not the segment API the
destination writes with (`segment/audience/`, `segment/mapping/`): those have no method in the
SDK, so the pushes are checked against TikTok's reference in test_tiktok_audiences_vendor.py.
The SDK is pointed at the sandbox with its own `Configuration.host` setting. It hands back the
envelope's `data` for code 0 and raises `TiktokSDKError` for any other code.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from threadline.contracts import AudienceTarget, PushMode
from threadline.testing.audience import sample_members
from threadline_tiktok_audiences import TikTokAudiences, TikTokAudiencesConfig
from threadline_tiktok_audiences.sandbox import TikTokAudiencesSandbox

business_api_client = pytest.importorskip(
    "business_api_client", reason="needs TikTok's SDK: pip install tiktok-business-api-sdk-official")
from business_api_client.tiktok_business.tiktok_exceptions import TiktokSDKError  # noqa: E402


@pytest.fixture
def tiktok() -> Iterator[TikTokAudiencesSandbox]:
    with TikTokAudiencesSandbox() as box:
        yield box


def audience_api(box: TikTokAudiencesSandbox):  # -> business_api_client.AudienceApi
    configuration = business_api_client.Configuration()
    configuration.host = box.base_url
    return business_api_client.AudienceApi(business_api_client.ApiClient(configuration))


def push(box: TikTokAudiencesSandbox, members: pa.Table, **target: str) -> None:
    """What a `threadline push` does: prepare the members and add them, through the destination."""
    config = TikTokAudiencesConfig.model_validate({"base_url": box.base_url, "access_token": box.TOKEN,
                                                   "advertiser_id": box.ADVERTISER_ID, **target})
    dest = TikTokAudiences()
    writer = dest.open_audience(config, AudienceTarget("tiktok", "lapsed", PushMode.DIFF, "run-1", members.num_rows, 0))
    writer.add(dest.prepare(config, members))
    writer.finish()


def test_the_sdk_lists_the_advertisers_audiences_page_by_page(tiktok):
    push(tiktok, sample_members(0, 3), audience_name="lapsed buyers")  # the destination creates it by name
    api = audience_api(tiktok)
    listed, pages = {}, []
    for page in (1, 2):
        # The SDK hands back the envelope's data for code 0 (and raises for any other code).
        answer = api.dmp_custom_audience_list(tiktok.ADVERTISER_ID, tiktok.TOKEN, page=page, page_size=1)
        pages.append(answer["data"]["page_info"])
        listed |= {a["audience_id"]: a["name"] for a in answer["data"]["list"]}
    assert listed == tiktok.audience_ids()
    assert sorted(listed.values()) == ["lapsed buyers", tiktok.AUDIENCE_NAME]
    assert pages[0] == {"page": 1, "page_size": 1, "total_number": 2, "total_page": 2}


def test_the_sdk_gets_an_audience_by_id_with_the_members_a_push_added(tiktok):
    push(tiktok, sample_members(0, 5), audience_id=tiktok.AUDIENCE_ID)
    answer = audience_api(tiktok).dmp_custom_audience_get(tiktok.ADVERTISER_ID, [tiktok.AUDIENCE_ID], tiktok.TOKEN)
    [audience] = answer["data"]["list"]
    assert audience["audience_id"] == tiktok.AUDIENCE_ID and audience["cover_num"] == 5
    assert len(tiktok.audience_hashes(tiktok.AUDIENCE_ID)) == 5
    asked = tiktok.requests_to("/open_api/v1.3/dmp/custom_audience/get/")[-1]
    assert asked.query["custom_audience_ids"] == [f'["{tiktok.AUDIENCE_ID}"]']  # a JSON array, as TikTok documents


def test_the_sdk_raises_tiktoks_codes_for_another_advertiser_and_a_revoked_token(tiktok):
    api = audience_api(tiktok)
    # The SDK's error keeps the code only in its message ("Error Code: 40001, message: …").
    with pytest.raises(TiktokSDKError, match="Error Code: 40001, message: No permission"):
        api.dmp_custom_audience_list(tiktok.OTHER_ADVERTISER_ID, tiktok.TOKEN)
    tiktok.revoke_credentials()
    with pytest.raises(TiktokSDKError, match="Error Code: 40105"):
        api.dmp_custom_audience_list(tiktok.ADVERTISER_ID, tiktok.TOKEN)
