"""pseudopeople (seed 2024) as customer data, for B4.

pseudopeople simulates noisy person records with ground truth (`simulant_id`); its sample
data ships with the package, so this works offline. Three sources: the 2020 census, Social
Security and W2/1099 tax forms. They carry no emails, phones or handles, so customer-like
identifiers are layered on, deterministically (numpy, seed 2024), the way shops see them:

- emails: every person has 1–3 personal addresses (60/30/10%) built from their name and
  birth year at common providers; each record carries one of them at random (so two sources
  often hold different addresses of one person), Gmail ones sometimes with dots or a
  `+tag`. 30% of households of two or more share a family address, which half of their
  members' records carry instead: the same email on different people.
- phones: every person has a current number; 20% also an old one, carried by 30% of their
  records, and half of those old numbers now belong to someone else: stale phones.
- nicknames: 15% of records whose first name has a common nickname carry the nickname
  (a list of the bench's own, wider than the product's table).
- social handles: 30% of people have one, loosely made from their name, on some records.

What each source carries: census (names, birth date, address; email 50%, phone 60%, handle
15%), Social Security (names, birth date, SSN; email 25%, phone 40%), W2/1099 (names, SSN,
mailing address, no birth date; email 60%, phone 30%, handle 10%).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SEED = 2024
PROVIDERS = np.array(["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "proton.me", "hotmail.com"])
AREA_CODES = np.array([206, 253, 360, 425, 509, 564])
# Common English nicknames (formal -> nicknames); wider than the product's own table on purpose.
NICKNAMES = {
    "william": ["bill", "will", "billy", "liam"], "robert": ["bob", "rob", "bobby", "robbie"],
    "richard": ["rick", "dick", "rich", "richie"], "james": ["jim", "jimmy", "jamie"], "john": ["jack", "johnny"],
    "joseph": ["joe", "joey"], "thomas": ["tom", "tommy"], "charles": ["charlie", "chuck"],
    "christopher": ["chris", "topher"], "daniel": ["dan", "danny"], "matthew": ["matt"], "anthony": ["tony"],
    "michael": ["mike", "mikey"], "david": ["dave", "davey"], "steven": ["steve"], "stephen": ["steve"],
    "edward": ["ed", "eddie", "ted"], "benjamin": ["ben", "benny"], "samuel": ["sam", "sammy"],
    "alexander": ["alex", "xander"], "nicholas": ["nick", "nico"], "jonathan": ["jon", "jonny"],
    "andrew": ["andy", "drew"], "timothy": ["tim", "timmy"], "kenneth": ["ken", "kenny"],
    "ronald": ["ron", "ronnie"], "donald": ["don", "donnie"], "gregory": ["greg"], "jeffrey": ["jeff"],
    "patrick": ["pat", "paddy"], "raymond": ["ray"], "lawrence": ["larry"], "gerald": ["jerry"],
    "elizabeth": ["liz", "beth", "betty", "eliza", "lizzie"], "margaret": ["maggie", "peggy", "meg"],
    "katherine": ["kate", "katie", "kathy"], "catherine": ["cathy", "cat", "kate"], "jennifer": ["jen", "jenny"],
    "patricia": ["pat", "patty", "trish"], "susan": ["sue", "susie"], "deborah": ["debbie", "deb"],
    "rebecca": ["becky", "becca"], "victoria": ["vicky", "tori"], "abigail": ["abby"], "samantha": ["sam"],
    "jessica": ["jess", "jessie"], "christine": ["chris", "tina"], "kimberly": ["kim"], "pamela": ["pam"],
    "barbara": ["barb", "barbie"], "dorothy": ["dot", "dottie"], "theresa": ["terry", "tess"],
    "alexandra": ["alex", "lexi"], "madison": ["maddie"], "isabella": ["bella", "izzy"], "olivia": ["liv"],
    "natalie": ["nat"], "nathaniel": ["nate", "nat"], "zachary": ["zach"], "joshua": ["josh"],
    "frederick": ["fred", "freddie"], "henry": ["hank", "harry"], "harold": ["harry", "hal"],
}


PLAIN = ("pseudopeople seed 2024 sample data (bundled with the package, offline): census 2020, Social Security, "
         "W2/1099; truth simulant_id; as generated")
LAYERED = (PLAIN.replace("; as generated", "") + "; layered on, numpy seed 2024: 1-3 personal emails per person (one per "
           "record, some gmail +tags), family emails for 30% of households carried by half their members' records, a "
           "current phone per person plus an old one for 20% (on 30% of their records; half of the old numbers now "
           "another person's), nicknames on 15% of records whose first name has one (a list wider than the product's), "
           "handles for 30% of people; census email 50%/phone 60%/handle 15%, SSA 25%/40%, W2 60%/30%/10%")


@dataclass
class Customers:
    tables: dict[str, pa.Table]  # "source.stream" -> records (primary key `id`)
    mappings: dict[str, dict]
    truth: dict[str, str]  # record key -> simulant id
    description: str


def load_sources(seed: int = SEED) -> dict[str, pd.DataFrame]:
    """The three pseudopeople sources from the sample data bundled with the package."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its progress bars would interleave with the JSON lines
    import pseudopeople as psp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "census": psp.generate_decennial_census(seed=seed, year=2020, verbose=False),
            "ssa": psp.generate_social_security(seed=seed, year=2020, verbose=False),
            "irs": psp.generate_taxes_w2_and_1099(seed=seed, year=2020, verbose=False),
        }


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v))


def _join(*parts: pd.Series) -> pd.Series:
    frame = pd.concat([_text(p).fillna("") for p in parts], axis=1)
    joined = frame.apply(lambda row: " ".join(x for x in row if x), axis=1)
    return joined.where(joined != "", None)


class People:
    """Per-person customer identifiers, drawn once per simulant."""

    def __init__(self, sources: dict[str, pd.DataFrame], rng: np.random.Generator) -> None:
        names = pd.concat([sources[s][["simulant_id", "first_name", "last_name"]] for s in ("census", "ssa", "irs")])
        names = names.dropna().drop_duplicates("simulant_id").set_index("simulant_id")
        births = sources["ssa"].dropna(subset=["date_of_birth"]).drop_duplicates("simulant_id").set_index("simulant_id")
        house = pd.concat([sources[s][["simulant_id", "household_id"]] for s in ("census", "irs")]).drop_duplicates("simulant_id")
        self.household = house.set_index("simulant_id")["household_id"].to_dict()
        ids = sorted(set(names.index) | set(self.household))
        n = len(ids)
        self.index = {sid: i for i, sid in enumerate(ids)}
        first = np.array([str(names["first_name"].get(s, "pat")).lower().replace(" ", "") for s in ids])
        last = np.array([str(names["last_name"].get(s, "lee")).lower().replace(" ", "").replace("-", "") for s in ids])
        year = np.array([str(births["date_of_birth"].get(s, "19800101"))[2:4] for s in ids])
        provider = PROVIDERS[rng.integers(0, len(PROVIDERS), (n, 3))]
        patterns = [np.char.add(np.char.add(np.char.add(first, "."), last), year),
                    np.char.add(np.char.add(np.array([f[:1] for f in first]), last), rng.integers(1, 99, n).astype(str)),
                    np.char.add(np.char.add(last, "_"), first)]
        self.emails = [[f"{patterns[k][i]}@{provider[i, k]}" for k in range(count)]
                       for i, count in enumerate(rng.choice([1, 2, 3], n, p=[0.6, 0.3, 0.1]))]
        self.phone = self._numbers(rng, n)
        has_old = rng.random(n) < 0.2
        old = self._numbers(rng, n)
        # half of the old numbers were passed on: they are someone else's current number now
        passed_on = has_old & (rng.random(n) < 0.5)
        new_owner = rng.permutation(np.flatnonzero(passed_on))
        self.phone[new_owner] = old[passed_on]
        self.old_phone = np.where(has_old, old, None)
        handle_patterns = [np.char.add(np.char.add(first, np.array([x[:1] for x in last])), year),
                           np.char.add(np.char.add(first, "_"), last), np.char.add(np.char.add("the", first), rng.integers(1, 999, n).astype(str))]
        choice = rng.integers(0, 3, n)
        self.handle = np.where(rng.random(n) < 0.3, np.choose(choice, handle_patterns).astype(object), None)
        households: dict[str, list[int]] = {}
        for sid, hid in self.household.items():
            households.setdefault(hid, []).append(self.index[sid])
        self.family_email: dict[str, str] = {}
        for hid in sorted(households):
            members = households[hid]
            if len(members) >= 2 and rng.random() < 0.3:
                self.family_email[hid] = f"{last[members[0]]}.family{rng.integers(1, 99)}@{PROVIDERS[rng.integers(len(PROVIDERS))]}"

    @staticmethod
    def _numbers(rng: np.random.Generator, n: int) -> np.ndarray:
        area = AREA_CODES[rng.integers(0, len(AREA_CODES), n)]
        exchange = rng.integers(200, 999, n)
        exchange = np.where(exchange == 555, 556, exchange)
        line = rng.integers(0, 10000, n)
        return np.array([f"{a}{e}{x:04d}" for a, e, x in zip(area, exchange, line)], dtype=object)

    def layer(self, frame: pd.DataFrame, rng: np.random.Generator, email: float, phone: float, handle: float) -> pd.DataFrame:
        """Email, phone and handle columns for one source's records."""
        out = frame.copy()
        people = [self.index.get(s) for s in frame["simulant_id"]]
        n = len(frame)
        u = rng.random((n, 8))
        emails, phones, handles = [], [], []
        for r, (p, sid) in enumerate(zip(people, frame["simulant_id"])):
            family = self.family_email.get(self.household.get(sid, ""))
            e = None
            if p is not None and u[r, 0] < email:
                e = family if family and u[r, 1] < 0.5 else self.emails[p][int(u[r, 2] * len(self.emails[p]))]
                if e.endswith("@gmail.com") and u[r, 3] < 0.2:
                    e = e.replace("@gmail.com", "+shop@gmail.com")
                elif u[r, 3] > 0.9:
                    e = e.upper()
            emails.append(e)
            ph = None
            if p is not None and u[r, 4] < phone:
                digits = self.old_phone[p] if self.old_phone[p] is not None and u[r, 5] < 0.3 else self.phone[p]
                ph = [f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}",
                      f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"][int(u[r, 6] * 3)]
            phones.append(ph)
            handles.append(self.handle[p] if p is not None and self.handle[p] is not None and u[r, 7] < handle else None)
        out["email"], out["phone"], out["handle"] = emails, phones, handles
        return out


def nicknamed(first: pd.Series, rng: np.random.Generator, share: float = 0.15) -> pd.Series:
    """Some first names replaced by a common nickname."""
    out = _text(first)
    u = rng.random((len(out), 2))
    values = []
    for (a, b), name in zip(u, out):
        options = NICKNAMES.get((name or "").lower())
        values.append(options[int(b * len(options))].title() if options and a < share else name)
    return pd.Series(values, index=first.index, dtype=object)


def build(seed: int = SEED, layered: bool = True) -> Customers:
    """The three sources as tables, their mappings and the truth. Without `layered`, the
    sources as pseudopeople makes them (names, dates, addresses, SSNs only)."""
    sources = load_sources(seed)
    rng = np.random.default_rng(seed)
    people = People(sources, rng) if layered else None
    census, ssa, irs = sources["census"].reset_index(drop=True), sources["ssa"].reset_index(drop=True), sources["irs"].reset_index(drop=True)
    frames = {
        "census.persons": pd.DataFrame({
            "simulant_id": census["simulant_id"], "first_name": _text(census["first_name"]),
            "middle_initial": _text(census["middle_initial"]), "last_name": _text(census["last_name"]),
            "date_of_birth": _text(census["date_of_birth"]),
            "street": _join(census["street_number"], census["street_name"], census["unit_number"]),
            "city": _text(census["city"]), "state": _text(census["state"]), "zipcode": _text(census["zipcode"])}),
        "ssa.persons": pd.DataFrame({
            "simulant_id": ssa["simulant_id"], "ssn": _text(ssa["ssn"]), "first_name": _text(ssa["first_name"]),
            "middle_initial": _text(ssa["middle_name"]).map(lambda v: v[:1] if v else None),
            "last_name": _text(ssa["last_name"]), "date_of_birth": _text(ssa["date_of_birth"])}),
        "irs.forms": pd.DataFrame({
            "simulant_id": irs["simulant_id"], "ssn": _text(irs["ssn"]), "first_name": _text(irs["first_name"]),
            "middle_initial": _text(irs["middle_initial"]), "last_name": _text(irs["last_name"]),
            "street": _join(irs["mailing_address_street_number"], irs["mailing_address_street_name"],
                            irs["mailing_address_unit_number"]).where(irs["mailing_address_po_box"].isna(),
                                                                      "po box " + _text(irs["mailing_address_po_box"]).fillna("")),
            "city": _text(irs["mailing_address_city"]), "state": _text(irs["mailing_address_state"]),
            "zipcode": _text(irs["mailing_address_zipcode"])}),
    }
    shares = {"census.persons": (0.5, 0.6, 0.15), "ssa.persons": (0.25, 0.4, 0.0), "irs.forms": (0.6, 0.3, 0.10)}
    tables, truth = {}, {}
    for key, frame in frames.items():
        if people is not None:
            frame = people.layer(frame, rng, *shares[key])
            frame["first_name"] = nicknamed(frame["first_name"], rng)
        frame.insert(0, "id", [str(i) for i in range(len(frame))])
        truth.update({f"{key}:{i}": sid for i, sid in zip(frame["id"], frame["simulant_id"])})
        tables[key] = pa.Table.from_pandas(frame.drop(columns=["simulant_id"]).astype(object), preserve_index=False).cast(
            pa.schema([(c, pa.string()) for c in frame.columns if c != "simulant_id"]))
    return Customers(tables, mappings(layered), truth, LAYERED if layered else PLAIN)


def mappings(layered: bool) -> dict[str, dict]:
    contact = {"email": "email", "phone": "phone", "handle": "social_handle"} if layered else {}
    names = {"first_name": "first_name", "middle_name": "middle_initial", "last_name": "last_name"}
    address = {"line1": "street", "postal_code": "zipcode", "city": "city", "region": "state"}
    return {
        "census.persons": {"identifiers": dict(contact), "traits": {**names, "birth_date": "date_of_birth"}, "address": address,
                           "cleaning": {"phone_region": "US", "date_formats": {"date_of_birth": "%m/%d/%Y"}}},
        "ssa.persons": {"identifiers": {"ssn": "national_id", **{k: v for k, v in contact.items() if k != "handle"}},
                        "traits": {**names, "birth_date": "date_of_birth"},
                        "cleaning": {"phone_region": "US", "date_formats": {"date_of_birth": "%Y%m%d"}}},
        "irs.forms": {"identifiers": {"ssn": "national_id", **contact}, "traits": names, "address": address,
                      "cleaning": {"phone_region": "US"}},
    }
