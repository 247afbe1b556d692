"""Writes the sample data in data/ (deterministic; committed, so the demo needs no step).

Three systems that know the same people differently: a CRM export (CSV, US dates m/d/yy),
an email list (JSON lines) and a loyalty system (CSV, European dates dd.mm.yyyy, ';'),
with the mess real exports have: a shared household email, a second email per person,
phones in several formats, a date nobody can parse and one ragged line.
"""

import csv
import json
import random
from pathlib import Path

random.seed(7)
OUT = Path(__file__).parent / "data"
FIRST = ["Kelly", "James", "Maria", "Ahmed", "Li", "Sofia", "Tom", "Ana", "Jon", "Priya", "Lucas", "Emma"]
LAST = ["Neal", "Smith", "Garcia", "Khan", "Wei", "Rossi", "Brown", "Silva", "Berg", "Patel", "Martin", "Jones"]


AREA_CODES = ["212", "312", "415", "617", "702", "206", "305", "512"]  # real ones: 555 numbers are fictional


def people(n=600):
    for i in range(n):
        f, l = random.choice(FIRST), random.choice(LAST)
        phone = f"{random.choice(AREA_CODES)}{random.randint(200, 999)}{random.randint(1000, 9999)}"
        yield {"i": i, "first": f, "last": l, "email": f"{f}.{l}{i}@example.com".lower(),
               "phone": phone, "year": random.randint(1950, 2004)}


def main():
    OUT.mkdir(exist_ok=True)
    everyone = list(people())
    with (OUT / "crm_customers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "first_name", "last_name", "email", "phone", "signup_date", "lifetime_value"])
        for p in everyone[:500]:
            phone = random.choice([f"({p['phone'][:3]}) {p['phone'][3:6]}-{p['phone'][6:]}", f"+1{p['phone']}", p["phone"]])
            date = f"{random.randint(1, 12)}/{random.randint(1, 28)}/{random.randint(18, 24)}"
            w.writerow([f"C{p['i']:05d}", p["first"], p["last"], p["email"].upper() if p["i"] % 9 == 0 else p["email"],
                        phone, date, f"{random.uniform(0, 2500):.2f}"])
        w.writerow(["C09998", "Bad", "Date", "bad.date@example.com", "2125550000", "31/31/99", "10.00"])
        f.write("C09999,Ragged,Row,only-four-fields\n")
        # a placeholder email many records share: the profile store must block it, not merge them
        for k in range(3):
            w.writerow([f"C0990{k}", "Front", f"Desk{k}", "test@test.com", "", "1/1/20", "0.00"])
    with (OUT / "email_subscribers.jsonl").open("w") as f:
        for p in everyone[100:600]:
            email = p["email"] if p["i"] % 5 else f"{p['first']}{p['year']}@mail.example.org".lower()
            f.write(json.dumps({"subscriber_id": 10_000 + p["i"], "email": email, "status": random.choice(
                ["subscribed", "subscribed", "subscribed", "unsubscribed", "cleaned"]),
                "updated_at": f"2026-{random.randint(1, 10):02d}-{random.randint(1, 28):02d}T10:00:00Z"}) + "\n")
    with (OUT / "loyalty_cards.csv").open("w", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["card_number", "holder_name", "phone", "joined", "points"])
        for p in everyone[::3]:
            for card in range(1 if p["i"] % 4 else 2):  # some people hold two cards
                w.writerow([f"L{p['i']:06d}{card}", f"{p['first']} {p['last']}", p["phone"],
                            f"{random.randint(1, 28):02d}.{random.randint(1, 12):02d}.20{random.randint(15, 25)}",
                            random.randint(0, 9000)])


if __name__ == "__main__":
    main()
