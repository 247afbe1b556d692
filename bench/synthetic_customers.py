"""Synthetic customer data with known truth, for tests and benchmarks.

Customer data is not person-registry data, so the generator makes what real stores see:
three systems that each know part of a person (a CRM, a web shop, a loyalty program),
several emails per person, Gmail dot/+tag variants, emails in odd case, phones written
nationally or internationally, household members sharing an email, stale phones, nicknames,
placeholder emails (test@test.com) on many records, and invalid emails, phones and dates.
Built column-wise with numpy so a million records take seconds.

Names: `names="small"` (the default, which the tests are written against) draws from 40
first and 40 last names, uniformly; at millions of records that makes every name block
grow with the population far faster than a real one's. `names="census"` draws from Faker's
en_US lists, each name with its published frequency (381 female and 322 male first names,
690 distinct, from the US Social Security Administration's counts, 1,000 surnames from the US census:
Smith 2.2% of people), so common names make large blocks and most names small ones, as in
a real customer file. The lists are read from the installed Faker (bench/requirements.txt),
whose version `Dataset.names` reports; the draw is the seed's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

FIRST = np.array(["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william", "elizabeth",
                  "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen",
                  "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark", "margaret", "steven", "sandra",
                  "ana", "sofia", "lucas", "mateo", "emma", "olivia", "noah", "liam", "mia", "amelia"])
NICK = {"william": "bill", "robert": "bob", "elizabeth": "liz", "richard": "rick", "joseph": "joe", "thomas": "tom",
        "michael": "mike", "daniel": "dan", "matthew": "matt", "margaret": "peggy", "steven": "steve", "anthony": "tony"}
LAST = np.array(["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
                 "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
                 "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson",
                 "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores"])
DOMAINS = np.array(["gmail.com", "yahoo.com", "outlook.com", "mail.com", "icloud.com", "proton.me"])
AREA = np.array([201, 212, 305, 312, 415, 512, 617, 702, 713, 805])


@dataclass
class Dataset:
    """Tables per "source.stream" (each with primary key `id`), the mappings for them, and
    the true person behind every record key."""

    tables: dict[str, pa.Table]
    mappings: dict[str, dict]
    truth: dict[str, int]
    people: int
    names: str = "small: 40 first and 40 last names, uniform"  # where the names came from

    @property
    def records(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def _s(a: np.ndarray) -> np.ndarray:
    return a.astype(object)


def census_names() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """First names, their frequencies, last names, theirs (lower case) and a description,
    from Faker's en_US person provider."""
    import faker
    from faker.providers.person.en_US import Provider

    def weighted(*lists: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        total: dict[str, float] = {}
        for names in lists:  # (female and male lists each sum to 1: half the people each)
            for name, w in names.items():
                total[name.lower()] = total.get(name.lower(), 0.0) + w / len(lists)
        p = np.array(list(total.values()))
        return np.array(list(total)), p / p.sum()

    first, pf = weighted(Provider.first_names_female, Provider.first_names_male)
    last, pl = weighted(Provider.last_names)
    return first, pf, last, pl, (f"census: Faker {faker.VERSION} en_US, {len(first)} first names (SSA frequencies), "
                                 f"{len(last)} last names (US census frequencies)")


def customers(people: int, seed: int = 7, records_per_person: float = 2.5, names: str = "small") -> Dataset:
    """About `records_per_person` × `people` records over three sources; `names` "small" or
    "census" (the module's doc)."""
    rng = np.random.default_rng(seed)
    n = people
    if names == "census":
        first_names, pf, last_names, pl, described = census_names()
        first, last = rng.choice(first_names, n, p=pf), rng.choice(last_names, n, p=pl)
    elif names == "small":
        first = FIRST[rng.integers(0, len(FIRST), n)]
        last = LAST[rng.integers(0, len(LAST), n)]
        described = Dataset.names
    else:
        raise ValueError(f"names: {names!r} is neither 'small' nor 'census'")
    pid = np.arange(n)
    birth = np.datetime64("1950-01-01") + rng.integers(0, 365 * 55, n).astype("timedelta64[D]")
    domain = DOMAINS[rng.integers(0, len(DOMAINS), n)]
    email = _s(np.char.add(np.char.add(np.char.add(np.char.add(first, "."), last), pid.astype(str)), np.char.add("@", domain)))
    email2 = _s(np.char.add(np.char.add(np.char.add(last, pid.astype(str)), "@work"), np.char.add(rng.integers(0, 500, n).astype(str), ".com")))
    phone_digits = np.char.add(AREA[rng.integers(0, len(AREA), n)].astype(str),
                               np.char.add(rng.integers(200, 999, n).astype(str), np.char.zfill(rng.integers(0, 9999, n).astype(str), 4)))
    # households: 6% of people share their email with the previous person (a family inbox)
    household = rng.random(n) < 0.06
    household[0] = False
    email = np.where(household, np.roll(email, 1), email)

    # record counts per source: crm ~0.9, shop ~1.0 (some people twice), loyalty ~0.6
    share = records_per_person / 2.5
    crm_idx = pid[rng.random(n) < 0.9 * share]
    shop_idx = np.concatenate([pid[rng.random(n) < 0.75 * share], pid[rng.random(n) < 0.25 * share]])
    loy_idx = pid[rng.random(n) < 0.6 * share]

    def messy_email(idx: np.ndarray, r: np.random.Generator) -> np.ndarray:
        e = email[idx].copy()
        u = r.random(len(idx))
        upper = u < 0.1
        e[upper] = np.char.upper(e[upper].astype(str))
        gmail = (u >= 0.1) & (u < 0.2) & np.char.endswith(e.astype(str), "@gmail.com")
        e[gmail] = np.char.replace(e[gmail].astype(str), "@gmail.com", "+shop@gmail.com")
        work = (u >= 0.2) & (u < 0.3)
        e[work] = email2[idx][work]
        bad = (u >= 0.3) & (u < 0.32)
        e[bad] = np.char.replace(e[bad].astype(str), "@", " at ")
        placeholder = (u >= 0.32) & (u < 0.35)
        e[placeholder] = "test@test.com"
        missing = (u >= 0.35) & (u < 0.40)
        e[missing] = None
        return e

    def messy_phone(idx: np.ndarray, r: np.random.Generator, national: bool) -> np.ndarray:
        digits = phone_digits[idx].astype(str)
        u = r.random(len(idx))
        out = digits.astype(object)
        if not national:
            out[u < 0.5] = np.char.add("+1", digits[u < 0.5])
        pretty = (u >= 0.5) & (u < 0.7)
        out[pretty] = [f"({x[:3]}) {x[3:6]}-{x[6:]}" for x in digits[pretty]]
        out[(u >= 0.9) & (u < 0.93)] = "12"  # unparseable
        out[u >= 0.93] = None
        return out

    def given(idx: np.ndarray, r: np.random.Generator) -> np.ndarray:
        f = _s(first[idx])
        use_nick = r.random(len(idx)) < 0.15
        f[use_nick] = [NICK.get(x, x) for x in f[use_nick]]
        return f

    r = np.random.default_rng(seed + 1)
    crm = pa.table({
        "id": pa.array([f"C{i}" for i in range(len(crm_idx))]),
        "email": pa.array(messy_email(crm_idx, r), pa.string()),
        "phone": pa.array(messy_phone(crm_idx, r, national=False), pa.string()),
        "first_name": pa.array(np.char.title(first[crm_idx].astype(str)).astype(object), pa.string()),
        "last_name": pa.array(np.char.upper(last[crm_idx].astype(str)).astype(object), pa.string()),
        "birth_date": pa.array(np.array([str(b) for b in birth[crm_idx]], dtype=object), pa.string()),
    })
    shop = pa.table({
        "id": pa.array([f"S{i}" for i in range(len(shop_idx))]),
        "email": pa.array(messy_email(shop_idx, r), pa.string()),
        "first_name": pa.array(given(shop_idx, r), pa.string()),
        "last_name": pa.array(_s(last[shop_idx]), pa.string()),
    })
    bd = birth[loy_idx].astype("datetime64[D]").astype(str)
    us_dates = np.array([f"{x[5:7]}/{x[8:10]}/{x[0:4]}" for x in bd], dtype=object)
    us_dates[r.random(len(loy_idx)) < 0.02] = "31/31/1999"
    loyalty = pa.table({
        "id": pa.array([f"L{i}" for i in range(len(loy_idx))]),
        "card": pa.array([f"{1000000 + i}" for i in range(len(loy_idx))]),
        "phone": pa.array(messy_phone(loy_idx, r, national=True), pa.string()),
        "first_name": pa.array(given(loy_idx, r), pa.string()),
        "last_name": pa.array(_s(last[loy_idx]), pa.string()),
        "birth_date": pa.array(us_dates, pa.string()),
    })
    truth = {f"crm.contacts:C{i}": int(p) for i, p in enumerate(crm_idx)}
    truth.update({f"shop.customers:S{i}": int(p) for i, p in enumerate(shop_idx)})
    truth.update({f"loyalty.members:L{i}": int(p) for i, p in enumerate(loy_idx)})
    mappings = {
        "crm.contacts": {"identifiers": {"email": "email", "phone": "phone", "id": "customer_id:crm"},
                         "traits": {"first_name": "first_name", "last_name": "last_name", "birth_date": "birth_date"},
                         "cleaning": {"phone_region": "US", "priority": 10, "date_formats": {"birth_date": "%Y-%m-%d"}}},
        "shop.customers": {"identifiers": {"email": "email", "id": "customer_id:shop"},
                           "traits": {"first_name": "first_name", "last_name": "last_name"}, "cleaning": {"priority": 5}},
        "loyalty.members": {"identifiers": {"phone": "phone", "card": "loyalty_card"},
                            "traits": {"first_name": "first_name", "last_name": "last_name", "birth_date": "birth_date"},
                            "cleaning": {"phone_region": "US", "date_formats": {"birth_date": "%m/%d/%Y"}}},
    }
    return Dataset({"crm.contacts": crm, "shop.customers": shop, "loyalty.members": loyalty}, mappings, truth, n, described)
