"""Write the mission's sample files from the sandboxes' shared population (run once; the
files are committed, so the demo needs nothing but this folder).

    python examples/mission/make_data.py

- data/loyalty_cards.csv: the till's card register — one row per card (a person may hold
  two or three), the holder's name as printed on the card, the phone as typed at the till
  (national format, sometimes missing) and, for some, an email.
- data/consent_log.csv: the website's consent banner (a consent-management platform's
  export): who allowed or refused advertising use of their data, and when. Ad platforms may
  only receive people who allowed it.
- data/do_not_contact.csv: the suppression list the marketing team keeps by hand (people who
  asked, on the phone or in a shop, never to be contacted).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from threadline.sandbox.people import format_phone, population

HERE = Path(__file__).parent / "data"
PEOPLE = 3000


def main() -> None:
    HERE.mkdir(exist_ok=True)
    people = population(size=PEOPLE)
    rng = random.Random(7)
    with open(HERE / "loyalty_cards.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["card_number", "holder_name", "phone", "email", "issued", "store"])
        for person in people:
            for n, card in enumerate(person.loyalty_cards):
                name = f"{person.first_name[0]}. {person.last_name}".upper() if n else person.full_name
                phone = person.mobile or (person.phones[0].number if person.phones else None)
                typed = format_phone(phone, "national") if phone and rng.random() < 0.8 else ""
                email = person.email if rng.random() < 0.4 else ""
                issued = person.first_seen.date().isoformat()
                out.writerow([card, name, typed, email, issued, rng.choice(["Austin 6th St", "Boston Newbury", "Online"])])
    with open(HERE / "consent_log.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["email", "purpose", "choice", "recorded_at"])
        for person in people:
            status, at = person.ad_consent.status, person.ad_consent.at
            if status in ("granted", "denied") and at is not None:
                choice = {"granted": "accepted", "denied": "rejected"}[status]
                out.writerow([person.email, "advertising", choice, at.strftime("%Y-%m-%dT%H:%M:%SZ")])
    with open(HERE / "do_not_contact.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["email", "asked_on", "channel"])
        for person in rng.sample(list(people[1:]), 25):
            out.writerow([person.email, person.first_seen.date().isoformat(), rng.choice(["phone", "in store", "letter"])])


if __name__ == "__main__":
    main()
