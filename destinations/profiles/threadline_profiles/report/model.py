"""The report's agreement-model section: the stored model's match weights, drawn as Splink
draws them, and whether any comparison fell back to the stated priors.

A match weight is log2(m/u): how many times likelier a level is between one person's two
records than between two people's, in bits. Bars right of zero are evidence for one person,
bars left of it evidence against; a pair's weights are summed with the prior (the first bar)
and linked when the sum reaches the threshold. The exact levels are drawn at their average
weight: exact agreement on a rare value weighs more and on a common one less (value
frequencies, kept with the model).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from threadline_profiles.resolve import model as stored_model
from threadline_profiles.resolve.agreement import MIN_MATCHING_PAIRS

if TYPE_CHECKING:
    from threadline_profiles.store import ProfileStore

LEVELS = stored_model.LEVEL_NAMES


def gather(store: ProfileStore) -> dict[str, Any] | None:
    """The current model's row and levels (None: the agreement rule keeps no model)."""
    return stored_model.current(store.engine)


def weights_svg(bars: list[tuple[str, float]], threshold: float | None = None, width: int = 640) -> str:
    """Horizontal bars, one per (label, weight), from a zero line: green for, red against,
    each labelled with its weight; the threshold a pair's sum must reach is a dashed line."""
    row, top, left, right = 18, 24, 190, 50
    height = top + row * len(bars) + 30
    values = [w for _, w in bars] + ([threshold] if threshold is not None else [])
    lo, hi = min(values + [0.0]), max(values + [0.0])
    span = (hi - lo) or 1.0
    plot = width - left - right

    def x(w: float) -> float:
        return left + plot * (w - lo) / span

    zero = x(0.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="match weights of the agreement model">',
             f'<text x="{left + plot / 2:.1f}" y="14" font-size="11" text-anchor="middle">match weight (log2 of m/u)</text>']
    for i, (label, w) in enumerate(bars):
        y = top + i * row
        x0, x1 = sorted((zero, x(w)))
        colour = "#3a8a4a" if w > 0 else "#b03a3a" if w < 0 else "#999"
        parts.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 1.0):.1f}" height="{row - 5}" fill="{colour}"/>')
        anchor, tx = ("start", x1 + 3) if w >= 0 else ("end", x0 - 3)
        parts.append(f'<text x="{tx:.1f}" y="{y + 12}" font-size="10" text-anchor="{anchor}">{w:+.2f}</text>')
    bottom = top + row * len(bars)
    parts.append(f'<line x1="{zero:.1f}" y1="{top - 2}" x2="{zero:.1f}" y2="{bottom + 2}" stroke="#555"/>')
    if threshold is not None:
        tx = x(threshold)
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 2}" x2="{tx:.1f}" y2="{bottom + 2}" stroke="#333" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{tx:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle">threshold {threshold:+.2f}</text>')
    parts.append("</svg>")
    return ('<figure class=chart>' + "".join(parts) + '<figcaption class=muted>match weights of the stored agreement model '
            '(right of zero: evidence for one person; exact levels at their average weight)</figcaption></figure>')


def render(data: dict[str, Any] | None) -> str:
    """The section: what the model is, the chart, and a line on the priors."""
    if not data:
        return ""
    bars = [("prior (any two records)", float(data["prior"]))]
    bars += [(f"{r['comparison']}: {LEVELS.get(int(r['level']), r['level'])}", float(r["weight"])) for r in data["levels"]]
    fell_back = data["from_priors"]
    if fell_back:
        seen = ", ".join(f"{html.escape(f)} ({n:,.0f} matching pairs)" for f, n in sorted(fell_back.items()))
        priors = (f"<p class=note>The model fell back to the stated priors for {seen}: fewer than {MIN_MATCHING_PAIRS} "
                  "matching pairs were seen in the blocks that leave each out, too few to estimate its m from the data. "
                  "Those comparisons weigh what the priors say until a refit on more data "
                  "(<code>threadline profiles build --refit</code>).</p>")
    else:
        priors = "<p>The model did not fall back to priors: every comparison's m was estimated from the data.</p>"
    return (f"<h2>Agreement model</h2><p class=muted>version {int(data['version'])}, fitted by build "
            f"{html.escape(str(data['build_id']))} at {html.escape(str(data['fitted_at'])[:19])} on {int(data['records']):,} "
            f"records and {int(data['pairs_used']):,} candidate pairs (about {float(data['matching_pairs'] or 0):,.0f} "
            "matching); reused by every build until it is fitted again.</p>"
            f"{priors}{weights_svg(bars, float(data['threshold']))}")
