"""The aggregates page and CSV export, rendered from the store's rows (pure: rows in, text out)."""

from __future__ import annotations

import csv
import html
import io
from typing import Any

from edge.aggregates.charts import bar_chart
from edge.aggregates.fold import FIELDS, SITE
from edge.aggregates.store import derived

FIGURES = (  # (key, heading, format)
    ("visits", "visits", "{:.0f}"), ("mean_visit_s", "mean visit (s)", "{:.0f}"),
    ("alerts", "alerts", "{:.0f}"), ("watches", "watches only", "{:.0f}"),
    ("acknowledged_share", "acknowledged", "{:.0%}"), ("alerts_acknowledged_share", "alerts acknowledged", "{:.0%}"),
    ("mean_ack_s", "time to acknowledge (s)", "{:.1f}"),
    ("calmed_share", "calmed down", "{:.0%}"), ("mean_calm_s", "time to calm (s)", "{:.1f}"),
    ("care_cues", "care cues", "{:.0f}"), ("care_cue_share", "care cue share", "{:.0%}"),
)
EU_NOTE = ("Per-counter figures are off: under the eu privacy profile a counter is usually one member of staff, "
           "and figures per counter would rate individual employees.")


EPISODE_FIGURES = ("acknowledged_share", "alerts_acknowledged_share", "mean_ack_s", "calmed_share", "mean_calm_s")
WITHHELD = "fewer than {k} visits: withheld"


def figures(row: dict[str, Any], min_visits: int = 1) -> dict[str, Any]:
    """Counters plus the derived figures of one row; small counts withheld (None): every figure of a row with
    data but fewer than ``min_visits`` visits (one customer's visit length, care cue or upset would show), and
    the means and shares of acknowledgement and calming of a row with fewer episodes (one employee's reaction)."""
    base = {f: float(row.get(f) or 0.0) for f in FIELDS}
    out: dict[str, Any] = {**row, **base, **derived(base), "withheld": False}
    if min_visits > 1 and max(base["visits"], base["episodes"]) > 0 and base["visits"] < min_visits:
        out.update({k: None for k in (*FIELDS, *derived(base))}, withheld=True)
    elif min_visits > 1 and 0 < base["episodes"] < min_visits:
        out.update({k: None for k in EPISODE_FIGURES})
    return out


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else spec.format(value)


def _table(rows: list[dict[str, Any]], key: str, heading: str, k: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in FIGURES)
    body = "".join(f"<tr><td>{html.escape(str(r[key]))}</td>"
                   + (f"<td colspan={len(FIGURES)}>{html.escape(WITHHELD.format(k=k))}</td>" if r["withheld"] else
                      "".join(f"<td>{_fmt(r[k], spec)}</td>" for k, _, spec in FIGURES)) + "</tr>" for r in rows)
    return f"<table><thead><tr><th>{html.escape(heading)}</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_page(site: str, days: list[dict[str, Any]], hours: list[dict[str, Any]], totals: dict[str, dict[str, Any]],
                per_counter: bool, since: str | None, min_visits: int = 1) -> str:
    """The whole page: summary, hour-of-day and per-day charts, tables, per-counter figures where allowed; figures
    of fewer than ``min_visits`` visits withheld (see ``figures``)."""
    k = min_visits
    days, total = [figures(r, k) for r in days], figures(totals.get(SITE, {}), k)
    by_hour = {int(r["hour"]): figures(r, k) for r in hours}
    hrs = [by_hour.get(h, figures({})) for h in range(24)]
    hour_chart = bar_chart("Hour of day (all days shown): visits and alert episodes", [f"{h:02d}" for h in range(24)],
                           {"visits": [r["visits"] or 0 for r in hrs],
                            "alerts + watches": [r["episodes"] or 0 for r in hrs]})
    labels = [str(r["day"])[5:] for r in days]
    trend = bar_chart("Trend over days: visits, alerts, watches", labels,
                      {"visits": [r["visits"] or 0 for r in days], "alerts": [r["alerts"] or 0 for r in days],
                       "watches": [r["watches"] or 0 for r in days]})
    shares = bar_chart("Trend over days: acknowledged and calmed-down share of episodes", labels,
                       {"acknowledged %": [round(100 * (r["acknowledged_share"] or 0), 1) for r in days],
                        "calmed down %": [round(100 * (r["calmed_share"] or 0), 1) for r in days]})
    summary = "".join(f"<div class=fig><b>{_fmt(total[k], spec)}</b><span>{html.escape(h)}</span></div>"
                      for k, h, spec in FIGURES)
    counters = [figures(r, k) for c, r in sorted(totals.items()) if c != SITE]
    counter_part = (("<h2>Per counter (alphabetical, not a ranking)</h2>" + _table(counters, "counter", "counter", k))
                    if per_counter and counters else f"<p class=note>{html.escape(EU_NOTE)}</p>" if not per_counter
                    else "")
    period = f"since {since}" if since else "all days"
    style = ("body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:80em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.2em .5em;"
             "text-align:right}th{background:#eee}td:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;"
             "gap:.6em}.fig{border:1px solid #ccc;border-radius:6px;padding:.4em .8em;min-width:8em}.fig b{display:"
             "block;font-size:1.5em}.fig span{color:#555;font-size:.9em}.note{color:#555}svg{display:block;"
             "margin:1em 0}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Aggregates: {html.escape(site)}'
            f"</title><style>{style}</style></head><body>\n<h1>Site {html.escape(site)}: aggregate figures "
            f"({html.escape(period)})</h1>\n<div class=figs>{summary}</div>\n{hour_chart}\n{trend}\n{shares}\n"
            f"<h2>Per day</h2>{_table(days, 'day', 'day', k)}\n{counter_part}\n"
            '<p>Export: <a href="aggregates.csv?by=day">CSV per day</a> · <a href="aggregates.csv?by=hour">CSV per '
            'hour</a> · <a href="metrics">Prometheus metrics</a></p>\n'
            "<p class=note>Only hourly counters are stored: no visit rows, no emotion readings, nothing about a "
            "person or a member of staff. An episode is one alert card (a watch, possibly raised to an alert); "
            f"times are from its first message. Rows of fewer than {k} visits are withheld, and the acknowledgement "
            f"and calming figures of fewer than {k} episodes (small counts would describe one customer or one "
            "member of staff).</p>\n</body></html>\n")


def render_csv(rows: list[dict[str, Any]], keys: list[str], min_visits: int = 1) -> str:
    """CSV of the rows: the key columns, every counter, every derived figure (empty where withheld, and a
    ``withheld`` column: 1 for a row of fewer than ``min_visits`` visits)."""
    out = io.StringIO()
    fig_keys = [k for k, _, _ in FIGURES if k not in FIELDS]
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*keys, *FIELDS, *fig_keys, "withheld"])
    for r in rows:
        f = figures(r, min_visits)
        w.writerow([*(r[k] for k in keys), *("" if f[x] is None else f"{f[x]:g}" for x in (*FIELDS, *fig_keys)),
                    int(f["withheld"])])
    return out.getvalue()
