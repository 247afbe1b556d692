"""The HTML report each build writes: one self-contained file (inline CSS and SVG).

It holds figures, never a person: names are shown as an initial and blocked values masked
(`s***@example.com`), so a report kept from an old build names nobody who was forgotten since.
"""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadline_profiles.pipeline import BuildResult
    from threadline_profiles.store import ProfileStore

SIZE_BINS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 10**12)]


def gather(store: ProfileStore) -> dict[str, Any]:
    """Every figure the report shows, from the published tables."""
    e = store.engine
    sizes = {r["records"]: r["n"] for r in e.rows("SELECT records, COUNT(*) AS n FROM tl_profiles GROUP BY records")}
    pairs = e.rows(
        "SELECT a.source AS a, b.source AS b, COUNT(DISTINCT a.profile_id) AS n FROM "
        "(SELECT DISTINCT profile_id, source FROM tl_members) AS a JOIN "
        "(SELECT DISTINCT profile_id, source FROM tl_members) AS b ON a.profile_id = b.profile_id "
        "GROUP BY a.source, b.source ORDER BY a.source, b.source"
    )
    return {
        "per_stream": e.rows("SELECT source, stream, COUNT(*) AS records, COUNT(DISTINCT profile_id) AS profiles "
                             "FROM tl_members GROUP BY source, stream ORDER BY source, stream"),
        "profiles": e.scalar("SELECT COUNT(*) FROM tl_profiles") or 0,
        "records": e.scalar("SELECT COUNT(*) FROM tl_members") or 0,
        "multi_source": e.scalar("SELECT COUNT(*) FROM tl_profiles WHERE sources > 1") or 0,
        "sizes": sizes,
        "overlap": pairs,
        "largest": [dict(r, name=_initial(r["name"])) for r in e.rows(
            "SELECT p.profile_id, p.records, p.sources, g.value AS name FROM tl_profiles AS p "
            "LEFT JOIN tl_golden AS g ON g.profile_id = p.profile_id AND g.field = 'last_name' "
            "ORDER BY p.records DESC, p.profile_id LIMIT 10")],
        "blocked": [dict(r, value=mask_value(r["value"])) for r in e.rows(
            "SELECT field, value, records, reason FROM tl_blocked ORDER BY records DESC, field, value LIMIT 25")],
        "blocked_total": e.scalar("SELECT COUNT(*) FROM tl_blocked") or 0,
        # A dropped link belongs to a record; what belongs to none (record_key NULL) is a note
        # on the whole build: pairs the agreement rule never compared because their block was
        # too large, and priors the model fell back to. Counting those as drops would put
        # hundreds of thousands of never-formed pairs in the headline.
        # Links are pairs, and one limit can refuse a record's links to each record of the other
        # profile: the records those links belonged to are the figure a reader can act on.
        "dropped": e.rows("SELECT rule, reason, CAST(COUNT(DISTINCT record_key) AS BIGINT) AS records, "
                          "CAST(SUM(links) AS BIGINT) AS links FROM tl_state_drops "
                          "WHERE record_key IS NOT NULL GROUP BY rule, reason ORDER BY links DESC, rule, reason"),
        "dropped_records": e.scalar("SELECT COUNT(DISTINCT record_key) FROM tl_state_drops WHERE record_key IS NOT NULL") or 0,
        "not_compared": e.rows("SELECT rule, reason, CAST(SUM(links) AS BIGINT) AS pairs FROM tl_state_drops "
                               "WHERE record_key IS NULL GROUP BY rule, reason ORDER BY pairs DESC, rule, reason"),
        "dq": e.rows("SELECT source, stream, field, SUM(n) AS total, "
                     "SUM(CASE WHEN status = 'invalid' THEN n ELSE 0 END) AS invalid, "
                     "SUM(CASE WHEN status = 'ambiguous' THEN n ELSE 0 END) AS ambiguous, "
                     "SUM(CASE WHEN status = 'blocked' THEN n ELSE 0 END) AS blocked "
                     "FROM tl_dq WHERE field <> '_updated_at' GROUP BY source, stream, field ORDER BY source, stream, field"),
        "reasons": e.rows("SELECT source, stream, field, status, reason, n FROM tl_dq WHERE status <> 'ok' "
                          "ORDER BY n DESC, source, stream, field LIMIT 40"),
        "links": e.rows("SELECT rule, COUNT(*) AS n FROM tl_links GROUP BY rule ORDER BY n DESC"),
    }


def _initial(name: str | None) -> str:
    """A last name as its initial: enough to tell one giant profile from another."""
    return f"{name[:1].upper()}." if name else ""


def mask_value(value: str | None) -> str:
    """A blocked value as the report shows it: an email as `i***@ourshop.com`, anything else
    with its first and last two characters (`00…00`, `+1…99`), short values as they are."""
    from threadline_profiles.audiences.membership import mask_email

    text = "" if value is None else str(value)
    if "@" in text:
        return mask_email(text)
    return text if len(text) <= 4 else f"{text[:2]}…{text[-2:]}"


def histogram_svg(sizes: dict[int, int], width: int = 560, height: int = 220) -> str:
    """Profiles by number of records, as an inline SVG bar chart. Bars are to scale (a log
    scale made 8,000 and 500 look alike); a bar too small to see still shows a sliver, and
    every bar is labelled with its count."""
    counts = [sum(n for s, n in sizes.items() if lo <= s <= hi) for lo, hi in SIZE_BINS]
    labels = [str(lo) if lo == hi else (f"{lo}+" if hi > 10**9 else f"{lo}–{hi}") for lo, hi in SIZE_BINS]
    top = max(counts + [1])
    bar_w = (width - 60) / len(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="profiles by number of records">']
    for i, (count, label) in enumerate(zip(counts, labels)):
        h = (height - 60) * count / top
        h = max(h, 1.5) if count else 0.0
        x = 40 + i * bar_w
        y = height - 30 - h
        parts.append(f'<rect x="{x + 4:.1f}" y="{y:.1f}" width="{bar_w - 8:.1f}" height="{h:.1f}" fill="#3b6ea5"/>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" font-size="11" text-anchor="middle">{count:,}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 12}" font-size="11" text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="40" y1="{height - 30}" x2="{width - 20}" y2="{height - 30}" stroke="#555"/>')
    parts.append("</svg>")
    return ('<figure class=chart>' + "".join(parts) +
            '<figcaption class=muted>profiles by number of records (bars to scale)</figcaption></figure>')


def one_source_profiles(store: ProfileStore) -> list[dict[str, Any]]:
    """Per source: profiles whose every record comes from that source, and their share of all
    profiles. A large share (social followers with only a handle) is worth saying out loud."""
    e = store.engine
    total = e.scalar("SELECT COUNT(*) FROM tl_profiles") or 0
    rows = e.rows("SELECT MIN(m.source) AS source, COUNT(*) AS profiles FROM (SELECT profile_id, MIN(source) AS source, "
                  "COUNT(DISTINCT source) AS n FROM tl_members GROUP BY profile_id) AS m WHERE m.n = 1 "
                  "GROUP BY m.source ORDER BY profiles DESC, source")
    return [dict(r, share=(r["profiles"] / total) if total else 0.0) for r in rows]


def _one_source_note(rows: list[dict[str, Any]]) -> str:
    big = [r for r in rows if r["share"] >= 0.2]
    if not big:
        return ""
    said = "; ".join(f"{r['share']:.0%} of all profiles come from {html.escape(r['source'])} alone" for r in big)
    return (f"<p class=note>{said}: their records share no identifier with any other source "
            "(a social handle only, say), so they cannot join a customer's profile and most audiences "
            "and channels cannot reach them.</p>")


def us_postal_codes(store: ProfileStore) -> dict[str, int]:
    """Profiles in the US whose postal code is no ZIP: 3-4 digits (leading zeros lost in a
    spreadsheet: `5401` for 05401; the direct-mail file repairs them) or anything else."""
    e = store.engine
    if not e.table_exists("tl_golden"):
        return {}
    rows = e.rows(
        "SELECT p.value AS zip FROM tl_golden AS p JOIN tl_golden AS c ON c.profile_id = p.profile_id "
        "AND c.field = 'country' AND c.value IN ('US', 'PR', 'VI', 'GU', 'AS', 'MP') WHERE p.field = 'postal_code'")
    zeros = sum(1 for r in rows if re.fullmatch(r"\d{3,4}", r["zip"] or ""))
    bad = sum(1 for r in rows if not re.fullmatch(r"\d{3,5}(-?\d{4})?", (r["zip"] or "").replace(" ", "")))
    return {"US postal codes": len(rows), "leading zeros lost (repaired in mail files)": zeros,
            "not a ZIP code (refused in mail files)": bad}


# columns of prose (a push's note, a refusal's reason): they wrap anywhere, even inside a long
# path, and keep a readable width, so the other columns need not squeeze
TEXT_COLUMNS = {"note", "reason", "spread", "definition"}
# names (lapsed_to_google) in a wide table may break where they must, so it fits the page
NAME_COLUMNS = {"activation", "audience", "destination", "outcome"}


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str = "none") -> str:
    if not rows:
        return f"<p class=muted>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{_cell_class(c)}>{_cell(r.get(c))}</td>" for c in columns)
        + "</tr>" for r in rows
    )
    # a wide table scrolls inside its own box instead of pushing the page past the window
    return f"<div class=wide><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _cell(value: Any) -> str:
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    return html.escape("" if value is None else str(value))


def _cell_class(column: str) -> str:
    return " class=text" if column in TEXT_COLUMNS else " class=name" if column in NAME_COLUMNS else ""


def _overlap(pairs: list[dict[str, Any]]) -> str:
    sources = sorted({p["a"] for p in pairs})
    if not sources:
        return "<p class=muted>no records</p>"
    cell = {(p["a"], p["b"]): p["n"] for p in pairs}
    head = "<th></th>" + "".join(f"<th>{html.escape(s)}</th>" for s in sources)
    body = "".join(
        f"<tr><th>{html.escape(a)}</th>" + "".join(f"<td>{cell.get((a, b), 0):,}</td>" for b in sources) + "</tr>"
        for a in sources
    )
    return f"<table class=matrix><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td{font-variant-numeric:tabular-nums}th{background:#f4f6f8}.muted{color:#777}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:22px}.bad{color:#a33}
.wide{max-width:100%;overflow-x:auto}td.text{min-width:14em;overflow-wrap:anywhere}td.name{overflow-wrap:anywhere;min-width:6em}
figure.chart{margin:8px 0}figure.chart svg{max-width:100%;height:auto;display:block}
.note{background:#fff6e0;border-left:3px solid #d9a400;padding:6px 10px}
"""


def render_report(data: dict[str, Any], result: BuildResult, location: str, extra: str = "") -> str:
    one_source = data.get("one_source", [])
    postal = data.get("us_postal", {})
    dq = [dict(r, unusable=float((r["invalid"] or 0) + (r["ambiguous"] or 0)) / float(r["total"]) if r["total"] else 0.0)
          for r in data["dq"]]
    cards = [("records", data["records"]), ("profiles", data["profiles"]),
             ("profiles in 2+ sources", data["multi_source"]), ("blocked values", data["blocked_total"]),
             ("records with a link refused", data["dropped_records"])]
    card_html = "".join(f"<div class=card><b>{v:,}</b>{html.escape(k)}</div>" for k, v in cards)
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.stage_seconds.items())
    how = result.how()
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>threadline profiles — build {html.escape(result.build_id)}</title>
<style>{CSS}</style></head><body>
<h1>Profile store report</h1>
<p class=muted>build {html.escape(result.build_id)} · {html.escape(how)} · store {html.escape(location)} · {html.escape(stages)}</p>
<div class=cards>{card_html}</div>
<h2>Records per source</h2>{_table(data["per_stream"], ["source", "stream", "records", "profiles"])}
<h3>Profiles from one source only</h3>{_one_source_note(one_source)}{_table(one_source, ["source", "profiles", "share"], "every profile joins two sources or more")}
<h2>Cluster sizes</h2>{histogram_svg(data["sizes"])}
<h2>Overlap between sources</h2><p class=muted>profiles holding records from both sources (the diagonal: profiles with any record from that source)</p>{_overlap(data["overlap"])}
<h2>Largest profiles</h2>{_table(data["largest"], ["profile_id", "records", "sources", "name"])}
<h2>Links by rule</h2>{_table(data["links"], ["rule", "n"], "no links")}
<h2>Blocked values</h2><p class=muted>never used to link: placeholders, configured values and patterns, and values shared by too many records</p>{_table(data["blocked"], ["field", "value", "records", "reason"], "nothing blocked")}
<h2>Links dropped by the guards</h2>{_table(data["dropped"], ["rule", "reason", "records", "links"], "none dropped")}
<h3>Pairs never compared, and model notes</h3><p class=muted>candidate pairs the agreement rule skipped because their block was larger than its <code>max_block</code> (a common name, a busy postal code), and comparisons whose weights came from the stated priors; these are not links, and a person in such a block can still be linked by the rule's other blocks</p>{_table(data.get("not_compared", []), ["rule", "reason", "pairs"], "every candidate pair was compared")}
<h2>Data quality</h2>{_table(dq, ["source", "stream", "field", "total", "invalid", "ambiguous", "blocked", "unusable"])}
{_table([{"check": k, "profiles": v} for k, v in postal.items()], ["check", "profiles"]) if postal.get("US postal codes") else ""}
<h3>Why values were not used</h3>{_table(data["reasons"], ["source", "stream", "field", "status", "reason", "n"], "every value was usable")}
{extra}
<h2>Rules in force</h2><ol>{"".join(f"<li>{html.escape(r)}</li>" for r in result.rules)}</ol>
</body></html>"""


def write_report(store: ProfileStore, result: BuildResult) -> Path:
    """Write this build's report (and `latest.html`) into the configured report folder."""
    folder = store.config.reports_path()
    folder.mkdir(parents=True, exist_ok=True)
    from threadline_profiles.activation.push import render_pushes
    from threadline_profiles.report import audiences, decisions, latency
    from threadline_profiles.report import model as agreement_model

    extra = (agreement_model.render(agreement_model.gather(store))
             + audiences.render(audiences.gather(store), _table) + decisions.render(decisions.gather(store), _table)
             + render_pushes(store, _table) + latency.render(store, _table))
    data = {**gather(store), "one_source": one_source_profiles(store), "us_postal": us_postal_codes(store)}
    text = render_report(data, result, store.engine.location, extra)
    path = folder / f"profiles-{result.build_id}.html"
    path.write_text(text, encoding="utf-8")
    (folder / "latest.html").write_text(text, encoding="utf-8")
    return path
