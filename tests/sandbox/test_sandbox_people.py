"""The shared population the vendor sandboxes draw from: deterministic, overlapping, messy."""

import re
from collections import Counter
from datetime import timedelta

import pytest
from threadline.sandbox.people import (
    AS_OF,
    HISTORY_START,
    SYSTEMS,
    format_phone,
    in_threes,
    members_of,
    population,
    population_seed,
)

PEOPLE = population(size=2000)


def test_people_are_the_same_for_every_size_and_call():
    small = population(size=50)
    assert small == PEOPLE[:50]
    assert population(size=50) == small


def test_another_seed_is_another_population_and_sandbox_seed_zero_is_the_default():
    other = population(seed=population_seed(1), size=50)
    assert [p.email for p in other[1:]] != [p.email for p in PEOPLE[1:50]]
    assert population_seed(0) == 2026


def test_person_zero_is_kelly_neal_known_to_every_system():
    kelly = PEOPLE[0]
    assert (kelly.full_name, kelly.email, kelly.social.handle) == ("Kelly Neal", "kelly.neal@gmail.com", "kneal1985")
    assert kelly.systems == set(SYSTEMS) and len(kelly.loyalty_cards) == 2
    assert kelly.segment == "loyal" and kelly.open_tickets and kelly.email_consent.status == "subscribed"


def test_members_of_a_system_are_the_first_people_it_knows():
    zendesk = members_of("zendesk", 40)
    assert len(zendesk) == 40 and all("zendesk" in p.systems for p in zendesk)
    assert [p.number for p in zendesk] == [p.number for p in PEOPLE if "zendesk" in p.systems][:40]
    accounts = members_of("shopify", 10, where=lambda p: p.shop_account)
    assert all(p.shop_account for p in accounts)
    with pytest.raises(ValueError, match="unknown system"):
        members_of("myspace", 1)


def test_every_pair_of_systems_shares_people():
    for a in SYSTEMS:
        for b in SYSTEMS:
            shared = sum(1 for p in PEOPLE if a in p.systems and b in p.systems)
            assert shared >= 50, (a, b, shared)


def test_households_share_an_inbox_an_address_and_a_landline_but_not_a_person():
    pairs = [(p, PEOPLE[p.household]) for p in PEOPLE[:-1] if p.household == p.number + 1]
    assert len(pairs) >= 50
    for one, other in pairs:
        assert one.email_of("household") == other.email_of("household") is not None
        assert one.address == other.address
        assert one.first_name != other.first_name or one.birth_date != other.birth_date


def test_apart_from_households_no_two_people_share_an_email():
    owners = Counter(e.address for p in PEOPLE for e in p.emails if e.kind != "household")
    assert owners.most_common(1)[0][1] == 1


def test_names_and_places_carry_the_quirks_of_real_exports():
    names = {p.first_name for p in PEOPLE} | {p.last_name for p in PEOPLE}
    assert {"Zoë", "Jürgen", "O'Brien"} <= names or any("'" in n for n in names)
    assert any(any(ord(ch) > 127 for ch in n) for n in names)
    assert sum(1 for p in PEOPLE if p.nickname) > 100
    countries = Counter(p.address.country for p in PEOPLE)
    assert countries["US"] > 1200 and min(countries["GB"], countries["DE"], countries["CA"]) > 60
    assert any(p.address.postal_code.startswith("0") for p in PEOPLE if p.address.country == "US")


def test_some_stale_phones_now_belong_to_someone_else():
    current = {p.mobile: p.number for p in PEOPLE if p.mobile}
    recycled = [(p.number, ph.number) for p in PEOPLE for ph in p.phones if ph.stale and ph.number in current]
    assert recycled and all(current[number] != owner for owner, number in recycled)


def test_handles_are_unique_and_often_made_from_name_and_birth_year():
    socials = [p for p in PEOPLE if p.social]
    handles = [p.social.handle.lower() for p in socials]
    assert len(handles) == len(set(handles)) and len(socials) > 700
    year_style = [p for p in socials if p.social.handle.endswith(str(p.birth_date.year))]
    assert len(year_style) > 100


def test_every_handle_is_one_x_would_accept():
    # X's OpenAPI `UserName`: a given name such as "Seo-yeon" once made the handle "seo-yeon_37".
    bad = [p.social.handle for p in PEOPLE if p.social and not re.fullmatch(r"[A-Za-z0-9_]{1,15}", p.social.handle)]
    assert bad == []


def test_segments_drive_the_purchase_rhythm():
    by_segment: dict[str, list] = {}
    for p in PEOPLE:
        by_segment.setdefault(p.segment, []).append(p)
    loyal = [p for p in by_segment["loyal"] if len(p.orders) >= 6]
    assert len(loyal) > 0.8 * len(by_segment["loyal"])
    assert all(AS_OF - p.orders[-1].at < timedelta(days=120) for p in by_segment["loyal"])
    assert all(AS_OF - p.orders[-1].at > timedelta(days=200) for p in by_segment["lapsed"] if p.orders
               and not p.abandoned_checkouts)
    assert all(not p.orders and p.abandoned_checkouts for p in by_segment["cart_abandoner"])
    assert all(len(p.orders) == 1 for p in by_segment["one_time"] if not p.abandoned_checkouts)


def test_some_buyers_abandoned_a_cart_then_bought_anyway():
    came_back = [p for p in PEOPLE if any(o.at > c.at for c in p.abandoned_checkouts for o in p.orders)]
    assert len(came_back) > 20


def test_everything_happens_within_the_two_years_before_as_of_and_order_ids_follow_time():
    orders = sorted((o for p in PEOPLE for o in p.orders), key=lambda o: o.at)
    assert HISTORY_START <= orders[0].at and orders[-1].at < AS_OF
    assert [o.id for o in orders] == sorted(o.id for o in orders) and len({o.id for o in orders}) == len(orders)
    assert all(abs(o.total - round(o.subtotal - o.discount + o.tax, 2)) < 0.005 for o in orders)
    moments = [e.at for p in PEOPLE for e in p.email_events] + [t.updated_at for p in PEOPLE for t in p.tickets]
    assert max(moments) < AS_OF


def test_consent_history_ends_in_the_current_status_and_crm_opt_outs_stay():
    resubscribed = [p for p in PEOPLE if [s for _, s in p.email_consent.history][-2:] == ["unsubscribed", "subscribed"]]
    assert resubscribed and all(p.email_consent.status == "subscribed" for p in resubscribed)
    assert any(p.crm_opted_out_at for p in resubscribed)  # the CRM still says opted out: latest wins decides
    for p in PEOPLE:
        history = p.email_consent.history
        assert [at for at, _ in history] == sorted(at for at, _ in history)
        if history:
            assert (p.email_consent.status, p.email_consent.at) == (history[-1][1], history[-1][0])
    assert {p.ad_consent.status for p in PEOPLE} == {"granted", "denied", "unknown"}


def test_tickets_opened_lately_are_mostly_still_open():
    recent = [t for p in PEOPLE for t in p.tickets if AS_OF - t.opened_at < timedelta(days=10)]
    old = [t for p in PEOPLE for t in p.tickets if AS_OF - t.opened_at > timedelta(days=60)]
    is_open = lambda t: t.status in ("new", "open", "pending", "hold")  # noqa: E731
    assert sum(map(is_open, recent)) > 0.6 * len(recent)
    assert sum(map(is_open, old)) < 0.1 * len(old)


def test_in_threes_makes_ties_of_three_and_never_moves_a_moment_back():
    moments = [AS_OF - timedelta(minutes=m, microseconds=7) for m in (5, 1, 9, 3, 7, 2, 8)]
    tied = in_threes(moments)
    assert all(t >= m.replace(microsecond=0) for t, m in zip(tied, moments))
    assert sorted(Counter(tied).values()) == [1, 3, 3]


def test_phones_are_written_the_ways_people_write_them():
    assert format_phone("+15125550134", "national") == "(512) 555-0134"
    assert format_phone("+15125550134", "dotted") == "512.555.0134"
    assert format_phone("+442079460958", "national") == "020 7946 0958"
    assert format_phone("+447700123456", "national") == "07700 123456"
    assert format_phone("+4915112345678", "international") == "+49 151 12345678"
    assert format_phone("+493012345678", "national") == "030 12345678"
