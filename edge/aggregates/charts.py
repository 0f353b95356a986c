"""Small self-contained SVG bar charts for the aggregates page (no script, no external files)."""

from __future__ import annotations

import html

COLOURS = ("#4a7fb5", "#d9822b", "#5c9e5c", "#a05195")


def bar_chart(title: str, labels: list[str], series: dict[str, list[float]], width: int = 720, height: int = 240,
              unit: str = "") -> str:
    """Grouped bars: one group per label, one bar per series; a legend and the maximum on the axis."""
    top, bottom, left, right = 44, 36, 44, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for vals in series.values() for v in vals] + [0.0])
    scale = plot_h / peak if peak > 0 else 0.0
    group = plot_w / max(len(labels), 1)
    bar = min(max(group * 0.8 / max(len(series), 1), 1.0), 36.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-label="{html.escape(title)}">',
           f'<title>{html.escape(title)}</title>',
           f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
           f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">{peak:g}{unit}</text>',
           f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>']
    for s, (name, vals) in enumerate(series.items()):
        colour = COLOURS[s % len(COLOURS)]
        for i, v in enumerate(vals):
            h = v * scale
            x = left + i * group + (group - bar * len(series)) / 2 + s * bar  # the group centred on its label
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{colour}"><title>{html.escape(labels[i])}: {html.escape(name)} {v:g}{unit}</title>'
                       "</rect>")
        lx = left + 150 * s
        out.append(f'<rect x="{lx}" y="24" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="33" font-size="11">{html.escape(name)}</text>')
    step = max(1, len(labels) // 12)
    for i in range(0, len(labels), step):
        x = left + i * group + group / 2
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">'
                   f"{html.escape(labels[i])}</text>")
    out.append("</svg>")
    return "".join(out)
