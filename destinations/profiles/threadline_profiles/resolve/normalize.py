"""Stage 3, normalize: one function per kind of value, applied to DISTINCT values only.

Each function takes the raw text (and a hint: the source's phone region or date formats)
and returns a `Normalized`: the cleaned `value` (what the golden record shows), a matching
`key` (what identity rules compare), a `status` (ok, invalid, ambiguous, blocked) and a
`reason` when it is not ok. Invalid values are kept raw by the caller, never used to link.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import phonenumbers

from threadline_profiles.resolve.placeholders import PLACEHOLDER_GIVEN


@dataclass(frozen=True)
class Normalized:
    value: str | None
    key: str | None
    status: str = "ok"  # ok | invalid | ambiguous | blocked
    reason: str = ""

    @classmethod
    def invalid(cls, reason: str, status: str = "invalid") -> Normalized:
        return cls(None, None, status, reason)


# ------------------------------------------------------------------------- email

# Addresses as mail systems deliver them (RFC 6531): letters of any script in the local part and
# the domain (`用户@例子.广告`, `josé@example.es`), and a dot ending the local part, which Japanese
# carriers handed out for years (`taro.@docomo.ne.jp`). The bulk path settles plain ASCII ones.
_LOCAL_CHAR = r"[^\s\"(),:;<>@\[\\\].]"
_EMAIL = re.compile(
    rf"^{_LOCAL_CHAR}+(\.{_LOCAL_CHAR}+)*\.?"
    r"@([^\W_]([\w-]{0,61}[^\W_])?\.)+([^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})$"
)
# Providers that ignore "+tag" in the local part; Gmail also ignores dots.
_PLUS_TAG_DOMAINS = {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "icloud.com",
                     "me.com", "protonmail.com", "proton.me", "fastmail.com"}
_DOTLESS_DOMAINS = {"gmail.com", "googlemail.com"}
_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


def normalize_email(raw: str, hint: str = "") -> Normalized:
    text = raw.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:]
    text = unicodedata.normalize("NFC", text.strip("<> ")).rstrip(".")  # `ann@example.com.`: the root's dot
    if not text:
        return Normalized.invalid("empty")
    if "@" not in text:
        return Normalized.invalid("no @")
    if not _EMAIL.match(text) or len(text.split("@")[0]) > 64:
        return Normalized.invalid("bad syntax")
    local, domain = text.rsplit("@", 1)
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in _PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
    return Normalized(text, f"{local}@{domain}")


# ------------------------------------------------------------------------- phone


def phone_general_patterns(calling_code: int) -> list[str]:
    """The general national-number pattern of every region sharing a calling code: what any
    number of the country looks like, assigned or not (US: [2-9]\\d{9}, no area code 0 or 1)."""
    from phonenumbers import PhoneMetadata
    from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

    out = []
    for region in _COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ()):
        meta = PhoneMetadata.metadata_for_region(region) or PhoneMetadata.metadata_for_nongeo_region(calling_code)
        if meta is not None and meta.general_desc is not None and meta.general_desc.national_number_pattern:
            out.append(meta.general_desc.national_number_pattern)
    return out


def well_formed_phone(number: phonenumbers.PhoneNumber) -> bool:
    national = phonenumbers.national_significant_number(number)
    return any(re.fullmatch(p, national) for p in phone_general_patterns(number.country_code))


def normalize_phone(raw: str, region: str = "") -> Normalized:
    text = raw.strip()
    if not any(c.isdigit() for c in text):
        return Normalized.invalid("empty" if not text else "no digits")
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") and not region:
        return Normalized.invalid("no country code and no phone_region for this source")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return Normalized.invalid("unparseable")
    # Well formed is enough: a number of a possible length that fits its country's general
    # pattern identifies a person in a customer file even in a range not yet assigned (or
    # assigned after the metadata was cut). Only the obviously invalid ones are refused.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return Normalized.invalid("wrong length")
    if not well_formed_phone(number):
        return Normalized.invalid("not a well-formed number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Normalized(e164, e164)


# ------------------------------------------------------------------------- names

_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "rev"}
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"}
NICKNAMES = {
    "abby": "abigail", "al": "albert", "alex": "alexander", "andy": "andrew", "drew": "andrew",
    "becky": "rebecca", "beth": "elizabeth", "betty": "elizabeth", "liz": "elizabeth", "lizzie": "elizabeth",
    "ben": "benjamin", "bill": "william", "billy": "william", "will": "william", "willy": "william",
    "bob": "robert", "bobby": "robert", "rob": "robert", "robbie": "robert", "cathy": "catherine",
    "kate": "katherine", "katie": "katherine", "kathy": "katherine", "charlie": "charles", "chuck": "charles",
    "chris": "christopher", "dan": "daniel", "danny": "daniel", "dave": "david", "dick": "richard",
    "rick": "richard", "ricky": "richard", "don": "donald", "ed": "edward", "eddie": "edward", "ted": "edward",
    "fred": "frederick", "greg": "gregory", "hank": "henry", "harry": "henry", "jack": "john",
    "johnny": "john", "jeff": "jeffrey", "jen": "jennifer", "jenny": "jennifer", "jim": "james",
    "jimmy": "james", "joe": "joseph", "joey": "joseph", "ken": "kenneth", "larry": "lawrence",
    "maggie": "margaret", "meg": "margaret", "peggy": "margaret", "matt": "matthew", "mike": "michael",
    "mick": "michael", "nick": "nicholas", "pat": "patricia", "patty": "patricia", "ron": "ronald",
    "sam": "samuel", "steve": "steven", "stephen": "steven", "sue": "susan", "susie": "susan",
    "tim": "timothy", "tom": "thomas", "tommy": "thomas", "tony": "anthony", "vicky": "victoria",
    "abe": "abraham", "angie": "angela", "annie": "ann", "art": "arthur", "artie": "arthur", "barb": "barbara",
    "bart": "bartholomew", "bev": "beverly", "cal": "calvin", "cam": "cameron", "cindy": "cynthia",
    "cliff": "clifford", "connie": "constance", "deb": "deborah", "debbie": "deborah", "di": "diana",
    "dot": "dorothy", "doug": "douglas", "ellie": "eleanor", "ernie": "ernest", "frank": "francis",
    "frankie": "francis", "gabe": "gabriel", "gene": "eugene", "gerry": "gerald", "jerry": "gerald",
    "ginny": "virginia", "gus": "augustus", "herb": "herbert", "jake": "jacob", "jess": "jessica",
    "jill": "jillian", "jon": "jonathan", "josh": "joshua", "judy": "judith", "julie": "julia",
    "kim": "kimberly", "len": "leonard", "lenny": "leonard", "les": "leslie", "lil": "lillian",
    "lou": "louis", "mandy": "amanda", "manny": "manuel", "marge": "margaret", "margie": "marjorie",
    "marty": "martin", "milly": "mildred", "mitch": "mitchell", "molly": "mary", "ned": "edward",
    "ollie": "oliver", "pam": "pamela", "patsy": "patricia", "pete": "peter", "phil": "philip",
    "randy": "randall", "ray": "raymond", "reggie": "reginald", "rich": "richard", "rosie": "rose",
    "rudy": "rudolph", "russ": "russell", "rusty": "russell", "sally": "sarah", "sandy": "sandra",
    "stan": "stanley", "stu": "stuart", "theo": "theodore", "tina": "christina", "trudy": "gertrude",
    "val": "valerie", "vince": "vincent", "walt": "walter", "wally": "walter", "winnie": "winifred",
    "woody": "woodrow", "zach": "zachary", "zack": "zachary",
}
# A first name made of placeholder words and these fillers ("the customer") is a placeholder.
_FILLER = {"in", "the", "of", "and", "a"}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _folded(text: str) -> str:
    """Lower case with accents taken off Latin letters (José → jose), and every other script
    kept as written (김민준, Пётр, प्रिया): a match key, so both sides fold alike."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        if unicodedata.combining(ch) and out and out[-1].isascii():
            continue  # an accent on a Latin letter
        out.append(ch if ch.isalpha() or unicodedata.category(ch) in ("Mn", "Mc") or ch in "'-" else " ")
    return unicodedata.normalize("NFC", "".join(out))


def _name_words(raw: str) -> list[str]:
    words = _folded(raw).replace("'", "").replace("-", " ").split()
    return [w for w in words if w not in _TITLES and w not in _SUFFIXES]


def normalize_name(raw: str, hint: str = "") -> Normalized:
    """Display value: trimmed, titles and suffixes kept out, case fixed when all one case.
    Key: ASCII, lower-case, no titles or suffixes; given names map nicknames to the formal
    name (hint "given"), as a matching hint only."""
    text = " ".join(raw.split())
    words = _name_words(text)
    if not words:
        return Normalized.invalid("empty" if not text else "no letters")
    display = " ".join(w for w in text.split() if w.lower().strip(".,") not in _TITLES | _SUFFIXES) or text
    if display.isupper() or display.islower():
        display = display.title()
    if hint == "given":
        if set(words) <= PLACEHOLDER_GIVEN | _FILLER and set(words) & PLACEHOLDER_GIVEN:
            return Normalized.invalid("placeholder name")
        words = [NICKNAMES.get(words[0], words[0]), *words[1:]]
    return Normalized(display, "".join(words))


# ------------------------------------------------------------------------- dates

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_YEAR_ALONE = re.compile(r"^\d{4}$")
_GUESS_FORMATS = ("%m/%d/%Y", "%d/%m/%Y")


def _parse(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return None


def _parse_dates(text: str, formats: list[str]) -> tuple[set[datetime], bool]:
    """Every reading of `text`; the flag says whether formats were declared."""
    if _ISO_DATE.match(text):
        try:
            return {datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)}, bool(formats)
        except ValueError:
            pass
    readings = {d for d in (_parse(text, f) for f in (formats or _GUESS_FORMATS)) if d is not None}
    return readings, bool(formats)


def normalize_date(raw: str, hint: str = "") -> Normalized:
    """A calendar date, read with the formats the source declared (hint: formats joined by
    "||"); without declared formats, ISO dates and unambiguous day/month dates are read."""
    text = raw.strip()
    if not text:
        return Normalized.invalid("empty")
    readings, _ = _parse_dates(text, [f for f in hint.split("||") if f])
    days = {d.date() for d in readings}
    if not days:
        if _YEAR_ALONE.match(text):  # a sign-up form that asks only the year
            return Normalized.invalid("a year alone is not a date (map the column as birth_year)")
        return Normalized.invalid("unparseable date" + ("" if hint else " (declare date_formats for this column)"))
    if len(days) > 1:
        return Normalized.invalid("ambiguous date (day and month could be swapped)", "ambiguous")
    day = days.pop()
    if not date(1900, 1, 1) <= day <= date.today():
        return Normalized.invalid("implausible date")
    return Normalized(day.isoformat(), day.isoformat())


def normalize_year(raw: str, hint: str = "") -> Normalized:
    """A year of birth alone ("1980", 1980.0 from a spreadsheet, or a date's year)."""
    found = re.fullmatch(r"\s*(\d{4})(?:\.0*|-\d{1,2}(?:-\d{1,2})?)?\s*", raw)
    if not found:
        return Normalized.invalid("empty" if not raw.strip() else "not a year")
    year = int(found.group(1))
    if not 1900 <= year <= date.today().year:
        return Normalized.invalid("implausible year")
    return Normalized(str(year), str(year))


def normalize_datetime(raw: str, hint: str = "") -> Normalized:
    """A moment, as ISO text (`YYYY-MM-DD HH:MM:SS`) so that text order is time order."""
    text = raw.strip()
    readings, _ = _parse_dates(text, [f for f in hint.split("||") if f])
    if not readings:
        return Normalized.invalid("unparseable timestamp")
    if len(readings) > 1:
        return Normalized.invalid("ambiguous timestamp", "ambiguous")
    moment = readings.pop().strftime("%Y-%m-%d %H:%M:%S")
    return Normalized(moment, moment)


# ------------------------------------------------------------------------- places

_STREET_WORDS = {"street": "st", "avenue": "ave", "road": "rd", "drive": "dr", "boulevard": "blvd", "lane": "ln",
                 "court": "ct", "place": "pl", "square": "sq", "terrace": "tce", "crescent": "cres",
                 "highway": "hwy", "parkway": "pkwy", "apartment": "apt", "suite": "ste", "north": "n",
                 "south": "s", "east": "e", "west": "w"}
COUNTRIES = {"united states": "US", "usa": "US", "united states of america": "US", "america": "US",
             "united kingdom": "GB", "uk": "GB", "great britain": "GB", "england": "GB", "germany": "DE",
             "deutschland": "DE", "france": "FR", "spain": "ES", "espana": "ES", "italy": "IT", "canada": "CA",
             "australia": "AU", "netherlands": "NL", "mexico": "MX", "brazil": "BR", "ireland": "IE",
             "india": "IN", "japan": "JP", "china": "CN", "new zealand": "NZ", "portugal": "PT",
             "belgium": "BE", "austria": "AT", "switzerland": "CH", "sweden": "SE", "norway": "NO",
             "denmark": "DK", "finland": "FI", "poland": "PL", "usa.": "US", "u.s.": "US", "u.s.a.": "US",
             "deu": "DE", "gbr": "GB", "fra": "FR", "esp": "ES", "ita": "IT", "can": "CA", "aus": "AU"}


def normalize_address_line(raw: str, hint: str = "") -> Normalized:
    words = re.sub(r"[^a-z0-9 ]+", " ", _ascii(raw).lower()).split()
    if not words:
        return Normalized.invalid("empty")
    return Normalized(" ".join(raw.split()), " ".join(_STREET_WORDS.get(w, w) for w in words))


def normalize_postal_code(raw: str, hint: str = "") -> Normalized:
    key = re.sub(r"[^A-Z0-9]+", "", _ascii(raw).upper())
    if not key:
        return Normalized.invalid("empty")
    if set(key) == {"0"}:  # 00000: a form's default, not a place
        return Normalized.invalid("placeholder postal code")
    return Normalized(" ".join(raw.upper().split()), key)


def normalize_country(raw: str, hint: str = "") -> Normalized:
    text = " ".join(_ascii(raw).lower().split())
    if not text:
        return Normalized.invalid("empty")
    if len(text) == 2 and text.isalpha():
        return Normalized(text.upper(), text.upper())
    code = COUNTRIES.get(text)
    return Normalized(code, code) if code else Normalized.invalid("unknown country")


def normalize_place(raw: str, hint: str = "") -> Normalized:
    text = " ".join(raw.split())
    if not text:
        return Normalized.invalid("empty")
    display = text.title() if text.isupper() or text.islower() else text
    return Normalized(display, " ".join(re.sub(r"[^a-z0-9 ]+", " ", _ascii(text).lower()).split()))


# ------------------------------------------------------------------------- other identifiers


def normalize_code(raw: str, hint: str = "") -> Normalized:
    """Customer ids and device ids: exact, only trimmed."""
    text = raw.strip()
    return Normalized(text, text) if text else Normalized.invalid("empty")


def normalize_loyalty_card(raw: str, hint: str = "") -> Normalized:
    key = re.sub(r"[\s-]+", "", raw).upper()
    return Normalized(raw.strip(), key) if key else Normalized.invalid("empty")


def normalize_national_id(raw: str, hint: str = "") -> Normalized:
    """Government ids typed by people (SSN, tax or passport numbers): letters and digits only,
    upper-case, so `123-45-6789` and `123 45 6789` are one key."""
    key = re.sub(r"[^0-9A-Za-z]+", "", raw).upper()
    return Normalized(raw.strip(), key) if key else Normalized.invalid("empty")


_HANDLE_URL = re.compile(r"^(https?://)?(www\.)?[a-z0-9.-]+\.[a-z]{2,}/")


def normalize_social_handle(raw: str, hint: str = "") -> Normalized:
    text = _HANDLE_URL.sub("", raw.strip().lower()).strip("/").lstrip("@")
    if not text:
        return Normalized.invalid("empty")
    if re.search(r"\s", text):
        return Normalized.invalid("contains spaces")
    return Normalized("@" + text, text)


def normalize_text(raw: str, hint: str = "") -> Normalized:
    text = " ".join(raw.split())
    return Normalized(text, text.lower()) if text else Normalized.invalid("empty")


NORMALIZERS: dict[str, Callable[[str, str], Normalized]] = {
    "email": normalize_email,
    "phone": normalize_phone,
    "name": normalize_name,
    "date": normalize_date,
    "year": normalize_year,
    "datetime": normalize_datetime,
    "address_line": normalize_address_line,
    "postal_code": normalize_postal_code,
    "country": normalize_country,
    "place": normalize_place,
    "customer_id": normalize_code,
    "device_id": normalize_code,
    "loyalty_card": normalize_loyalty_card,
    "national_id": normalize_national_id,
    "social_handle": normalize_social_handle,
    "text": normalize_text,
}


IDENTIFIER_KINDS = {"email", "phone", "customer_id", "device_id", "loyalty_card", "social_handle", "national_id"}
