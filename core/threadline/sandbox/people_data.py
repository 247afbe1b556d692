"""The word lists behind `threadline.sandbox.people`: names, places, products, campaigns.

Plain tables, no logic. Places are real cities with postal codes and phone area codes that
belong to them (so a phone, a postal code and a city agree, as they do in real records);
street numbers and line numbers are random.
"""

from __future__ import annotations

# Formal first name -> the short forms people also go by (Katherine is Kate in the shop).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Katherine": ("Kate", "Katie", "Kathy"), "Elizabeth": ("Liz", "Beth", "Lizzie"), "Robert": ("Bob", "Rob", "Bobby"),
    "William": ("Bill", "Will", "Billy"), "Michael": ("Mike", "Mikey"), "Jennifer": ("Jen", "Jenny"),
    "Christopher": ("Chris",), "Jonathan": ("Jon", "Jonny"), "Margaret": ("Maggie", "Peggy", "Meg"),
    "Alexander": ("Alex", "Xander"), "Daniel": ("Dan", "Danny"), "Thomas": ("Tom", "Tommy"), "James": ("Jim", "Jamie"),
    "Joseph": ("Joe", "Joey"), "Patricia": ("Pat", "Trish"), "Rebecca": ("Becky", "Becca"), "Samantha": ("Sam",),
    "Nicholas": ("Nick", "Nico"), "Anthony": ("Tony",), "Steven": ("Steve",), "Kimberly": ("Kim",),
    "Deborah": ("Debbie", "Deb"), "Susan": ("Sue", "Susie"), "Richard": ("Rick", "Rich"), "Edward": ("Ed", "Ted"),
    "Victoria": ("Vicky", "Tori"), "Benjamin": ("Ben",), "Matthew": ("Matt",), "Jessica": ("Jess",),
    "Gregory": ("Greg",), "Timothy": ("Tim",), "Andrew": ("Andy", "Drew"), "Christine": ("Chris", "Tina"),
    "Josephine": ("Jo", "Josie"), "Francesca": ("Fran", "Frankie"), "Frederick": ("Fred", "Freddie"),
    "Theodore": ("Theo", "Ted"), "Abigail": ("Abby",), "Isabella": ("Bella", "Izzy"), "Zachary": ("Zach",),
    "Nathaniel": ("Nate", "Nat"), "Jacqueline": ("Jackie",), "Kelly": (), "Alejandro": ("Alex",),
    "Guillermo": ("Memo",), "Francisco": ("Paco", "Cisco"), "Johannes": ("Hannes",), "Wolfgang": ("Wolf",),
    "Magdalena": ("Lena",), "Katharina": ("Kathi",), "Maximilian": ("Max",), "Elisabeth": ("Lisa", "Sissi"),
}

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "US": ("Kelly", "Katherine", "Elizabeth", "Robert", "William", "Michael", "Jennifer", "Christopher", "Jonathan",
           "Margaret", "Alexander", "Daniel", "Thomas", "James", "Joseph", "Patricia", "Rebecca", "Samantha",
           "Nicholas", "Anthony", "Steven", "Kimberly", "Deborah", "Susan", "Richard", "Edward", "Victoria",
           "Benjamin", "Matthew", "Jessica", "Gregory", "Timothy", "Andrew", "Abigail", "Isabella", "Zachary",
           "Nathaniel", "Jacqueline", "Maria", "José", "Sofía", "Mateo", "Camila", "Alejandro", "Guillermo",
           "Francisco", "Renée", "Zoë", "Chloé", "André", "DeShawn", "Aaliyah", "Jamal", "Imani", "Wei", "Mei",
           "Hiroshi", "Yuki", "Priya", "Arjun", "Anika", "Nguyen", "Minh", "Ji-woo", "Seo-yeon", "Fatima", "Omar",
           "Aisha", "Noah", "Liam", "Olivia", "Emma", "Ava", "Mia", "Harper", "Ethan", "Logan", "Madison", "Taylor"),
    "GB": ("Oliver", "George", "Harry", "Amelia", "Isla", "Poppy", "Charlotte", "Freddie", "Alfie", "Siobhan",
           "Niamh", "Eilidh", "Callum", "Rhys", "Gareth", "Katherine", "Elizabeth", "Victoria", "Edward", "Thomas"),
    "DE": ("Jürgen", "Björn", "Sören", "Jörg", "Uwe", "Katharina", "Elisabeth", "Magdalena", "Maximilian", "Johannes",
           "Wolfgang", "Lena", "Anna", "Lukas", "Felix", "Hannah", "Leonie", "Niklas", "Mehmet", "Ayşe"),
    "CA": ("Léa", "François", "Émile", "Noémie", "Gabrielle", "Étienne", "Mathéo", "Chloé", "Olivier", "Benoît",
           "Liam", "Emma", "Jacob", "Ava", "Katherine", "Alexander", "Samantha", "Aiyana", "Harjit", "Simran"),
}

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "US": ("Neal", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
           "Martinez", "Hernández", "López", "González", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
           "Jackson", "Martin", "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez",
           "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill",
           "Flores", "O'Brien", "O'Connor", "D'Angelo", "McDonald", "MacKenzie", "Kim", "Park", "Patel", "Shah",
           "Chen", "Wang", "Tanaka", "Okafor", "Washington", "Jefferson", "Gonzalez-Pérez", "Smith-Jones",
           "van der Berg", "De La Cruz", "St. John", "Núñez", "Peña", "Kowalski", "Nowak", "Abdullah"),
    "GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts", "Walker",
           "Hughes", "O'Neill", "McLeod", "Ní Bhriain", "Featherstonehaugh", "Ashworth", "Singh", "Begum"),
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schröder", "Köhler",
           "Hoffmann", "Schäfer", "Groß", "Weiß", "von Bülow", "Yılmaz", "Öztürk", "Krüger"),
    "CA": ("Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Gagné",
           "Ouellet", "Pelletier", "Bélanger", "Lévesque", "Smith", "Brown", "Wilson", "Macdonald", "Singh", "Gill"),
}

# country -> (share of the population, country name)
COUNTRIES = {"US": (0.75, "United States"), "GB": (0.10, "United Kingdom"), "CA": (0.08, "Canada"), "DE": (0.07, "Germany")}

# country -> (city, region code, region name, postal codes, phone area codes without the trunk 0)
PLACES: dict[str, tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "US": (
        ("New York", "NY", "New York", ("10001", "10011", "10025", "10128"), ("212", "646", "917")),
        ("Brooklyn", "NY", "New York", ("11201", "11211", "11215"), ("718", "347")),
        ("Austin", "TX", "Texas", ("78701", "78704", "78751"), ("512", "737")),
        ("Houston", "TX", "Texas", ("77002", "77006", "77019"), ("713", "832")),
        ("Chicago", "IL", "Illinois", ("60614", "60622", "60657"), ("312", "773")),
        ("San Francisco", "CA", "California", ("94103", "94110", "94117"), ("415", "628")),
        ("Los Angeles", "CA", "California", ("90012", "90026", "90039"), ("213", "323")),
        ("Seattle", "WA", "Washington", ("98101", "98103", "98122"), ("206",)),
        ("Portland", "OR", "Oregon", ("97205", "97214", "97217"), ("503", "971")),
        ("Boston", "MA", "Massachusetts", ("02110", "02116", "02130"), ("617", "857")),
        ("Cambridge", "MA", "Massachusetts", ("02138", "02139"), ("617",)),
        ("Denver", "CO", "Colorado", ("80202", "80205", "80218"), ("303", "720")),
        ("Miami", "FL", "Florida", ("33130", "33137", "33139"), ("305", "786")),
        ("Atlanta", "GA", "Georgia", ("30303", "30308", "30306"), ("404", "470")),
        ("Philadelphia", "PA", "Pennsylvania", ("19103", "19125", "19147"), ("215", "267")),
        ("Nashville", "TN", "Tennessee", ("37203", "37206", "37212"), ("615",)),
        ("Minneapolis", "MN", "Minnesota", ("55401", "55405", "55408"), ("612",)),
        ("Phoenix", "AZ", "Arizona", ("85004", "85006", "85013"), ("602", "480")),
        ("Burlington", "VT", "Vermont", ("05401", "05408"), ("802",)),
        ("Newark", "NJ", "New Jersey", ("07102", "07104"), ("973", "862")),
        ("Madison", "WI", "Wisconsin", ("53703", "53705"), ("608",)),
        ("Raleigh", "NC", "North Carolina", ("27601", "27605"), ("919", "984")),
        ("Salt Lake City", "UT", "Utah", ("84101", "84102"), ("801", "385")),
        ("San Juan", "PR", "Puerto Rico", ("00901", "00907"), ("787",)),
    ),
    "GB": (
        ("London", "ENG", "England", ("N1 9GU", "E2 7DJ", "SE15 4QN", "SW9 8BJ", "NW1 8NH"), ("20",)),
        ("Manchester", "ENG", "England", ("M1 1AE", "M4 5JD", "M20 2RN"), ("161",)),
        ("Bristol", "ENG", "England", ("BS1 4DJ", "BS6 5QA"), ("117",)),
        ("Leeds", "ENG", "England", ("LS1 4DY", "LS6 3HN"), ("113",)),
        ("Edinburgh", "SCT", "Scotland", ("EH1 1YZ", "EH8 9YL"), ("131",)),
        ("Cardiff", "WLS", "Wales", ("CF10 1EP", "CF24 4HQ"), ("29",)),
    ),
    "DE": (
        ("Berlin", "BE", "Berlin", ("10115", "10999", "12047", "10437"), ("30",)),
        ("Hamburg", "HH", "Hamburg", ("20095", "22767", "20357"), ("40",)),
        ("München", "BY", "Bayern", ("80331", "80469", "81667"), ("89",)),
        ("Köln", "NW", "Nordrhein-Westfalen", ("50667", "50672", "50823"), ("221",)),
        ("Leipzig", "SN", "Sachsen", ("04109", "04275"), ("341",)),
    ),
    "CA": (
        ("Toronto", "ON", "Ontario", ("M5V 2T6", "M6J 1H4", "M4M 1H9"), ("416", "647")),
        ("Ottawa", "ON", "Ontario", ("K1P 1J9", "K1N 5T2"), ("613", "343")),
        ("Montréal", "QC", "Québec", ("H2X 1Y4", "H2T 2M1", "H3B 4W8"), ("514", "438")),
        ("Vancouver", "BC", "British Columbia", ("V6B 1A1", "V5T 3G7"), ("604", "778")),
        ("Calgary", "AB", "Alberta", ("T2P 1J9", "T2R 0A5"), ("403", "587")),
    ),
}

# Mobile prefixes (after the country code) where numbers are mobile: GB 07xxx, DE 015x/016x/017x.
MOBILE_PREFIXES = {"GB": ("7400", "7480", "7800", "7900", "7500", "7712"), "DE": ("151", "160", "170", "176", "157")}
# The first digit of a landline's local number, where the area allows only some (London: 020 7..., 020 8...).
LOCAL_FIRST_DIGITS = {"20": "378", "29": "2", "161": "2345678", "117": "9", "113": "2345", "131": "2345",
                      "30": "2345678", "40": "2345678", "89": "12345", "221": "2345", "341": "2345"}

STREETS = {
    "US": ("Maple Ave", "Oak St", "Elm St", "Cedar Ln", "Main St", "Park Ave", "Washington Blvd", "Lake Shore Dr",
           "Congress Ave", "Valencia St", "Pine St", "2nd Ave", "Highland Ave", "Sunset Blvd", "Peachtree St NE",
           "Broadway", "Market St", "Division St", "Mississippi Ave", "Colfax Ave"),
    "GB": ("Upper Street", "Hoxton Square", "Rye Lane", "Coldharbour Lane", "Oldham Street", "Gloucester Road",
           "Kirkgate", "Leith Walk", "Cowbridge Road East", "Camden High Street"),
    "DE": ("Kastanienallee", "Bergmannstraße", "Schanzenstraße", "Sendlinger Straße", "Ehrenstraße",
           "Karl-Liebknecht-Straße", "Oranienstraße", "Schönhauser Allee"),
    "CA": ("Queen St W", "Rue Saint-Denis", "Bank St", "Commercial Dr", "17 Ave SW", "Ossington Ave",
           "Boulevard Saint-Laurent", "Dundas St W"),
}

PERSONAL_DOMAINS = {
    "US": ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
           "proton.me", "comcast.net"),
    "GB": ("gmail.com", "gmail.com", "btinternet.com", "yahoo.co.uk", "hotmail.co.uk", "outlook.com", "sky.com"),
    "DE": ("gmail.com", "gmx.de", "gmx.de", "web.de", "t-online.de", "posteo.de", "outlook.de"),
    "CA": ("gmail.com", "gmail.com", "videotron.ca", "rogers.com", "sympatico.ca", "yahoo.ca", "outlook.com"),
}
OLD_DOMAINS = ("aol.com", "hotmail.com", "earthlink.net", "juno.com", "msn.com", "yahoo.com", "att.net")

# Employers: (name, email domain). Domains under `.example` are reserved: no real company owns them.
COMPANIES = (
    ("Brightline Logistics", "brightline-logistics.example"), ("Harborview Dental", "harborviewdental.example"),
    ("Acme Analytics", "acme-analytics.example"), ("Northwind Foods", "northwind.example"),
    ("Globex", "globex.example"), ("Initech", "initech.example"), ("Umbrella Health", "umbrellahealth.example"),
    ("Hooli", "hooli.example"), ("Stark Design Studio", "starkdesign.example"), ("Pied Piper", "piedpiper.example"),
    ("Wayne & Partners LLP", "wayne-partners.example"), ("Vandelay Industries", "vandelay.example"),
    ("Soylent Co", "soylent.example"), ("Tyrell Robotics", "tyrell.example"), ("Oceanic Air", "oceanic.example"),
    ("Blue Sun Grocers", "bluesun.example"), ("Cyberdyne", "cyberdyne.example"), ("Wonka Confections", "wonka.example"),
    ("Dunder Mifflin", "dundermifflin.example"), ("Gringotts Bank", "gringotts.example"),
)
JOB_TITLES = ("Office Manager", "Buyer", "Head of People", "Software Engineer", "Nurse", "Teacher", "Designer",
              "Account Executive", "Barista Trainer", "Operations Lead", "CFO", "Student", "Chef", "Consultant")

# The shop's catalogue: (sku, title, category, price). The category is the SKU's first part.
CATALOG = (
    ("COFFEE-ESP-1K", "Espresso beans 1kg", "coffee", 24.00),
    ("COFFEE-HOUSE-340", "House blend 340g", "coffee", 14.50),
    ("COFFEE-ETH-250", "Ethiopia Yirgacheffe 250g", "coffee", 16.00),
    ("COFFEE-DECAF-340", "Swiss water decaf 340g", "coffee", 15.00),
    ("BREW-GRD-2", "Burr grinder", "brewing", 149.99),
    ("BREW-V60", "Pour-over dripper", "brewing", 28.00),
    ("BREW-PRESS-1L", "French press 1l", "brewing", 39.00),
    ("BREW-KETTLE", "Gooseneck kettle", "brewing", 79.00),
    ("ACC-MUG-W", "Ceramic mug", "accessories", 12.00),
    ("ACC-FILTER-100", "Filter papers (100)", "accessories", 4.50),
    ("ACC-TOTE", "Canvas tote", "accessories", 18.00),
    ("TEA-EARL-100", "Earl Grey loose leaf 100g", "tea", 11.00),
    ("TEA-SENCHA-100", "Sencha 100g", "tea", 13.00),
    ("GIFT-CARD-50", "Gift card 50", "gift_cards", 50.00),
    ("SUB-MONTHLY", "Coffee subscription (one month)", "subscriptions", 22.00),
)
CATEGORIES = ("coffee", "brewing", "accessories", "tea", "gift_cards", "subscriptions")

TICKET_SUBJECTS = (
    ("Where is my order?", "delivery"), ("Order arrived damaged", "damaged"), ("Refund please", "refund"),
    ("Loyalty points missing", "loyalty"), ("Change my subscription", "subscription"),
    ("Grinder stopped working", "warranty"), ("Wrong item in my box", "fulfilment"), ("Cannot log in", "account"),
)
PRESALE_SUBJECTS = (("Is the decaf really caffeine free?", "question"), ("Do you ship to my town?", "question"),
                    ("Wholesale prices for our office?", "wholesale"))

NEWSLETTER_SUBJECTS = ("This month at Threadline", "New harvest: Ethiopia is back", "Brew guide: the perfect V60",
                       "Meet our roasters", "Holiday gift guide", "Your coffee questions, answered")
PROMO_SUBJECTS = ("20% off beans this weekend", "Free shipping ends tonight", "Your cart misses you",
                  "Back in stock: the burr grinder", "Double points week", "A new decaf to try", "Last chance: gift cards")

HANDLE_WORDS = ("coffee", "espresso", "latte", "runner", "moon", "pixel", "night", "bookworm", "wanderer", "chef",
                "garden", "vinyl", "retro", "sunny", "urban", "cats", "dog", "hiker", "beans", "brew")
BIOS = ("", "", "Coffee. Code. Cats.", "Runner 🏃", "Views my own", "Parent of 2 | football", "Marketing @ a startup",
        "Love a bargain", "Home barista ☕", "Nurse. Tea > coffee (don't tell)", "Vinyl and V60s")
# Free-text locations people type, per city; None (no location) is added by the generator.
NICKNAMED_CITIES = {"New York": ("NYC 🗽", "NYC", "New York, NY"), "Los Angeles": ("LA", "Los Angeles, CA"),
                    "Austin": ("ATX", "Austin, TX"), "San Francisco": ("SF", "Bay Area"), "London": ("LDN", "London, England"),
                    "Toronto": ("The 6ix", "Toronto, ON"), "Philadelphia": ("Philly",), "München": ("Munich", "MUC"),
                    "Montréal": ("Montreal", "MTL"), "Chicago": ("Chi-town", "Chicago, IL")}
NOWHERE = ("somewhere", "Earth", "in my head", "🌍", "wherever the coffee is")
