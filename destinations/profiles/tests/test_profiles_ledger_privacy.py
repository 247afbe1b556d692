"""Push ledgers of email tools keep no address in the clear: Mailchimp's keeps the subscriber
hash only (removals go by hash), Klaviyo's keeps the address encrypted under the store's
secret and compares it by a keyed digest; removals and changed addresses still work."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from threadline.testing import sample_members
from threadline_profiles.activation.push import Ledger, PushOutcome, push_members
from threadline_profiles.config.activations import Activation
from threadline_profiles.store import ProfileStore

mailchimp = pytest.importorskip("threadline_mailchimp_audiences", reason="threadline-mailchimp-audiences is not installed")
klaviyo = pytest.importorskip("threadline_klaviyo_lists", reason="threadline-klaviyo-lists is not installed")
from threadline_klaviyo_lists.sandbox import KlaviyoListsSandbox  # noqa: E402
from threadline_mailchimp_audiences.sandbox import MailchimpAudiencesSandbox  # noqa: E402

CONTACTS = [f"member.{i}@example.com" for i in range(1200)]  # sample_members' addresses


@pytest.fixture
def store(tmp_path: Path):
    with ProfileStore.open({"path": str(tmp_path / "p.duckdb"), "report_dir": str(tmp_path / "reports")}) as s:
        yield s


def stored_text(store: ProfileStore, activation: str) -> str:
    rows = store.engine.rows(f"SELECT * FROM tl_ledger_{activation}") + store.engine.rows(f"SELECT * FROM tl_refused_{activation}")
    return " ".join(str(v) for r in rows for v in r.values())


def push_to(store, dest, config, members: pa.Table, name: str) -> PushOutcome:
    activation = Activation(audience="winback", connector=dest.name)
    outcome = PushOutcome(name, "winback", dest.name, "diff")
    return push_members(store, name, activation, dest, config, members, outcome)


def mailchimp_push(store, box, members):
    dest = mailchimp.MailchimpAudiences()
    config = dest.spec.model_validate({"base_url": f"{box.base_url}/3.0", "api_key": box.API_KEY, "list_id": box.newsletter,
                                       "tag": "Winback", "backoff_base": 0.01})
    return push_to(store, dest, config, members, "winback_mc")


def tagged(box) -> set[str]:
    return box.segment_emails(box.newsletter, box.tag_id(box.newsletter, "Winback"))


def test_the_mailchimp_ledger_keeps_subscriber_hashes_and_no_address(store):
    with MailchimpAudiencesSandbox(people=5, contacts=CONTACTS) as box:
        members = sample_members(0, 600)
        mailchimp_push(store, box, pa.concat_tables([members, sample_members(1500, 3)]))  # 3 Mailchimp refuses
        assert store.engine.table_columns("tl_ledger_winback_mc") == ["member_id", "subscriber_hash"]
        assert "@" not in stored_text(store, "winback_mc"), "neither the ledger nor the refused rows keep an address"
        assert tagged(box) == set(members.column("email").to_pylist())


def test_a_few_removals_go_by_subscriber_hash_and_many_read_the_segment_once(store):
    with MailchimpAudiencesSandbox(people=5, contacts=CONTACTS) as box:
        members = sample_members(0, 1100)
        mailchimp_push(store, box, members)
        box.clear_requests()
        mailchimp_push(store, box, members.slice(2))  # 2 left: fewer than the segment's 2 pages
        deletes = [r for r in box.requests if r.method == "DELETE"]
        assert len(deletes) == 2 and all("/members/" in r.path and "@" not in r.path for r in deletes)
        box.clear_requests()
        outcome = mailchimp_push(store, box, members.slice(900))  # 898 more left
        assert outcome.removes == 898
        assert not [r for r in box.requests if r.method == "DELETE"]
        assert len([r for r in box.requests if r.method == "GET" and r.path.endswith("/members")]) == 2
        assert tagged(box) == set(members.slice(900).column("email").to_pylist())


def test_an_older_mailchimp_ledger_with_addresses_loses_them_without_a_repush(store):
    with MailchimpAudiencesSandbox(people=5, contacts=CONTACTS) as box:
        members = sample_members(0, 50)
        mailchimp_push(store, box, members)
        # as the previous version kept it: the address beside the hash
        store.engine.run(["ALTER TABLE tl_ledger_winback_mc ADD COLUMN email VARCHAR",
                          "UPDATE tl_ledger_winback_mc SET email = 'someone@example.com'"])
        outcome = mailchimp_push(store, box, members)
        assert (outcome.adds, outcome.removes) == (0, 0)
        assert store.engine.table_columns("tl_ledger_winback_mc") == ["member_id", "subscriber_hash"]


def klaviyo_push(store, box, members):
    dest = klaviyo.KlaviyoLists()
    config = dest.spec.model_validate({"base_url": f"{box.base_url}/api", "api_key": box.API_KEY,
                                       "list_id": box.AUDIENCE_LIST_ID, "backoff_base": 0.01})
    return push_to(store, dest, config, members, "winback_kl")


def test_the_klaviyo_ledger_keeps_addresses_encrypted_and_still_removes_and_notices_a_change(store):
    with KlaviyoListsSandbox(people=5, contacts=CONTACTS) as box:
        members = sample_members(0, 300)
        klaviyo_push(store, box, members)
        text = stored_text(store, "winback_kl")
        assert "@" not in text and "member." not in text
        assert store.engine.table_columns("tl_ledger_winback_kl") == ["member_id", "email", "_tl_digest_email"]
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_ledger_winback_kl WHERE email LIKE 'tl1:%'") == 300
        again = klaviyo_push(store, box, members)
        assert (again.adds, again.removes) == (0, 0), "the digests compare equal addresses as equal"
        moved = members.to_pylist()
        moved[0]["email"] = "member.1000@example.com"  # member 0 now uses another address
        changed = klaviyo_push(store, box, pa.Table.from_pylist(moved[:250], schema=members.schema))
        assert (changed.adds, changed.removes) == (1, 51)
        on_list = box.list_emails(box.AUDIENCE_LIST_ID)
        assert "member.0@example.com" not in on_list and "member.1000@example.com" in on_list
        assert "member.299@example.com" not in on_list and "member.1@example.com" in on_list


def test_an_older_klaviyo_ledger_with_plain_addresses_is_sealed(store):
    ledger = Ledger(store, "old_kl", pa.schema([("member_id", pa.string()), ("email", pa.string())]))
    ledger.replace(pa.table({"member_id": ["p1"], "email": ["ana@example.com"]}))
    with KlaviyoListsSandbox(people=5, contacts=CONTACTS) as box:
        klaviyo_push_as = klaviyo.KlaviyoLists()
        config = klaviyo_push_as.spec.model_validate({"base_url": f"{box.base_url}/api", "api_key": box.API_KEY,
                                                      "list_id": box.AUDIENCE_LIST_ID, "backoff_base": 0.01})
        push_to(store, klaviyo_push_as, config, sample_members(0, 5), "old_kl")
    assert "@" not in stored_text(store, "old_kl")


def test_a_removal_by_hash_of_a_contact_already_out_of_the_tag_is_done(store):
    with MailchimpAudiencesSandbox(people=5, contacts=CONTACTS) as box:
        members = sample_members(0, 20)
        mailchimp_push(store, box, members)
        box.archive(box.newsletter, "member.0@example.com")  # gone from Mailchimp meanwhile: 404 on removal
        outcome = mailchimp_push(store, box, members.slice(1))
        assert (outcome.outcome, outcome.removes) == ("pushed", 1)
        assert store.engine.scalar("SELECT COUNT(*) FROM tl_ledger_winback_mc") == 19


def test_the_digest_duckdb_computes_is_rfc_2104_hmac_sha256():
    import hashlib
    import hmac

    import duckdb
    from threadline_profiles.activation.seal import Seal
    from threadline_profiles.activation.secret import StoreSecret

    secret = StoreSecret(b"s" * 64, "test")
    seal = Seal(("email",), secret)
    got = duckdb.sql(f"SELECT {seal.digest_sql(repr('ana@example.com'))}").fetchall()[0][0]
    assert got == hmac.new(secret.derive("ledger digest"), b"ana@example.com", hashlib.sha256).hexdigest()
    sealed = seal.seal(pa.table({"member_id": ["p1", "p2"], "email": ["ana@example.com", None]}))
    assert sealed.column("_tl_digest_email").to_pylist() == [got, None]
    assert seal.unseal(sealed).to_pylist() == [{"member_id": "p1", "email": "ana@example.com"},
                                               {"member_id": "p2", "email": None}]
