"""The build report's audience, trait and consent sections (inline HTML and SVG, no scripts).

Figures only: sizes, counts and trait distributions; never an email, phone or name.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from threadline_profiles.audiences import membership
from threadline_profiles.traits import compute, consent

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

COLORS = ("#3b6ea5", "#d1603d", "#3a9a5b", "#8e5ea2", "#c9a227", "#4bb3c4", "#a34d6d", "#6b7b8c")


def gather(store: ProfileStore) -> dict[str, Any]:
    """Audience sizes now and over builds, a summary of every trait, and consent per channel."""
    return {
        "history": membership.size_history(store),
        "latest": membership.latest_sizes(store),
        "traits": trait_summary(store),
        "consent": consent.summary(store),
        "as_of": compute.latest_as_of(store),
    }


def trait_summary(store: ProfileStore) -> list[dict[str, Any]]:
    """Per trait of tl_traits: its type, how many profiles have a value, and its spread."""
    engine = store.engine
    columns = [c for c in engine.table_columns("tl_traits") if c != "profile_id"]
    if not columns:
        return []
    info = compute.catalog(store.config)
    total = engine.scalar("SELECT COUNT(*) FROM tl_traits") or 0
    out = []
    for name in columns:
        kind = info[name].type if name in info else "text"
        col = f't."{name}"'
        if kind == compute.LIST:
            have = engine.scalar(f"SELECT COUNT(*) FROM tl_traits AS t WHERE ARRAY_LENGTH({col}, 1) > 0") or 0
            top = engine.rows(f"SELECT v, COUNT(*) AS n FROM (SELECT UNNEST({col}) AS v FROM tl_traits AS t) AS u "
                              "GROUP BY v ORDER BY n DESC, v LIMIT 4")
            spread = ", ".join(f"{r['v']} ({r['n']:,})" for r in top)
        elif kind in (compute.INTEGER, compute.NUMBER):
            row = engine.rows(f"SELECT COUNT({col}) AS have, MIN({col}) AS lo, MEDIAN({col}) AS mid, MAX({col}) AS hi "
                              "FROM tl_traits AS t")[0]
            have = row["have"]
            spread = f"min {_num(row['lo'])} · median {_num(row['mid'])} · max {_num(row['hi'])}" if have else ""
        elif kind == compute.BOOLEAN:
            have = engine.scalar(f"SELECT COUNT(*) FROM tl_traits AS t WHERE {col}") or 0
            spread = f"{have / total:.1%} true" if total else ""
        elif kind == compute.TIMESTAMP:
            row = engine.rows(f"SELECT COUNT({col}) AS have, MIN({col}) AS lo, MAX({col}) AS hi FROM tl_traits AS t")[0]
            have = row["have"]
            spread = f"{str(row['lo'])[:10]} … {str(row['hi'])[:10]}" if have else ""
        else:
            have = engine.scalar(f"SELECT COUNT({col}) FROM tl_traits AS t") or 0
            top = engine.rows(f"SELECT {col} AS v, COUNT(*) AS n FROM tl_traits AS t WHERE {col} IS NOT NULL "
                              "GROUP BY v ORDER BY n DESC, v LIMIT 4")
            spread = ", ".join(f"{r['v']} ({r['n']:,})" for r in top)
        out.append({"trait": name, "type": kind, "profiles": int(have), "spread": spread})
    return out


def _num(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _nice_step(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least `raw`."""
    step = 1
    while step < raw:
        for factor in (2, 5 / 2, 2):
            step = int(step * factor)
            if step >= raw:
                break
    return step


def sizes_svg(history: list[dict[str, Any]], width: int = 720, height: int = 260) -> str:
    """Audience sizes across evaluations: one line per audience, a dot per build (hover for
    the figures), y from zero."""
    if not history:
        return ""
    seqs = sorted({r["seq"] for r in history})
    names = sorted({r["audience"] for r in history})
    step = _nice_step(max([r["size"] for r in history] + [1]) / 4)
    top = step * 4
    left, right, upper, lower = 56, 150, 16, 40
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(seq: int) -> float:
        return left + (plot_w * seqs.index(seq) / (len(seqs) - 1) if len(seqs) > 1 else plot_w / 2)

    def y(size: int) -> float:
        return upper + plot_h * (1 - size / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             'aria-label="audience sizes across builds">']
    for i in range(5):  # gridlines at round sizes up to just above the largest
        value = step * i
        parts.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{left + plot_w}" y2="{y(value):.1f}" stroke="#e3e6ea"/>')
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">{value:,.0f}</text>')
    by_seq = {r["seq"]: r for r in history}
    every = max(1, len(seqs) // 8)
    for i, seq in enumerate(seqs):
        if i % every == 0 or i == len(seqs) - 1:
            row = by_seq[seq]  # traits as of a fixed day (a replay, a backfill) say more than when the build ran
            when = f"as of {str(row['as_of'])[:10]}" if row.get("as_of") and len(set(r.get("as_of") for r in history)) > 1 \
                else str(row["evaluated_at"])[5:16]
            parts.append(f'<text x="{x(seq):.1f}" y="{height - lower + 14}" font-size="10" text-anchor="middle">'
                         f'#{seq}</text><text x="{x(seq):.1f}" y="{height - lower + 26}" font-size="9" fill="#777" '
                         f'text-anchor="middle">{html.escape(when)}</text>')
    for k, name in enumerate(names):
        color = COLORS[k % len(COLORS)]
        points = [(r["seq"], r["size"], r) for r in history if r["audience"] == name]
        if len(points) > 1:
            path = " ".join(f"{x(s):.1f},{y(n):.1f}" for s, n, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for s, n, r in points:
            tip = f"{name}: {n:,} members in build {r['build_id']} (+{r['added']:,} −{r['removed']:,})"
            parts.append(f'<circle cx="{x(s):.1f}" cy="{y(n):.1f}" r="3" fill="{color}"><title>{html.escape(tip)}</title></circle>')
        ly = upper + 14 + 18 * k
        parts.append(f'<rect x="{width - right + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{width - right + 28}" y="{ly}" font-size="11">{html.escape(name)}</text>')
    parts.append(f'<line x1="{left}" y1="{upper + plot_h}" x2="{left + plot_w}" y2="{upper + plot_h}" stroke="#555"/>')
    parts.append("</svg>")
    return "".join(parts)


def render(data: dict[str, Any], table: Any) -> str:
    """The sections, using the report's own table renderer `table(rows, columns, empty)`."""
    latest = [{**r, "change": f"+{r['added']:,} −{r['removed']:,}", "left out: excluded": r["excluded_by_exclusion"],
               "suppressed": r["excluded_suppressed"], "no required consent": r["excluded_no_consent"]}
              for r in data["latest"].values()]
    latest.sort(key=lambda r: r["audience"])
    as_of = f" · traits as of {str(data['as_of'])[:19]}" if data["as_of"] else ""
    out = [
        f"<h2>Audiences</h2><p class=muted>members at this build, before the consent of each destination's channel{as_of}</p>",
        table(latest, ["audience", "size", "matched", "left out: excluded", "suppressed", "no required consent", "change",
                       "status"], "no audiences evaluated"),
    ]
    if data["history"]:
        out.append(f"<h3>Audience sizes across builds</h3>{sizes_svg(data['history'])}")
    out.append("<h2>Traits</h2>")
    out.append(table(data["traits"], ["trait", "type", "profiles", "spread"], "no traits computed"))
    out.append("<h2>Consent (marketing)</h2><p class=muted>the latest statement of any source wins; without one, the "
               "channel's default applies</p>")
    out.append(table(data["consent"], ["channel", "granted by a source", "denied by a source", "no record", "default"],
                     "no consent data"))
    return "".join(out)
