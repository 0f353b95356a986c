"""The privacy report's blocks rendered as GitHub-flavoured Markdown or as one standalone, print-ready HTML page."""

from __future__ import annotations

import base64
import html
import re
from datetime import UTC, datetime
from typing import Any

Block = tuple[Any, ...]  # ("h", level, text) | ("p", text) | ("ul", items) | ("check", items) | ("table", head, rows)


def _cell(s: str) -> str:
    return s.replace("\n", " ").replace("|", "\\|").replace("\\\\|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind in ("ul", "check"):
            out.append("\n".join(("- [ ] " if kind == "check" else "- ") + i for i in blk[1]))
        elif kind == "table":
            lines = ["| " + " | ".join(blk[1]) + " |", "|" + "---|" * len(blk[1])]
            lines += ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in blk[2]]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _inline(s: str, image: str | None) -> str:
    s = html.escape(s.replace("\\|", "|"), quote=True)  # quotes too: alt text goes inside alt="..."
    if image is not None:
        s = re.sub(r"!\[([^\]]*)\]\(zones\.png\)", lambda mm: f'<img alt="{mm.group(1)}" src="{image}">', s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)


def to_html(blocks: list[Block], png: bytes | None = None) -> str:
    """Render blocks as one standalone, print-ready HTML page (the zones PNG embedded)."""
    img = "data:image/png;base64," + base64.b64encode(png).decode() if png else None
    body: list[str] = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{_inline(blk[2], img)}</h{blk[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(blk[1], img)}</p>")
        elif kind in ("ul", "check"):
            box = "&#9744; " if kind == "check" else ""
            body.append("<ul>" + "".join(f"<li>{box}{_inline(i, img)}</li>" for i in blk[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in blk[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c), img)}</td>" for c in r) + "</tr>" for r in blk[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font:14px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #bbb;padding:.25em .5em;"
             "vertical-align:top;text-align:left}th{background:#eee}code{font-size:90%;background:#f4f4f4}"
             "ul{padding-left:1.4em}img{max-width:100%;border:1px solid #ccc}"
             "@media print{h2{page-break-before:auto}table{page-break-inside:auto}}")
    title = html.escape(blocks[0][2]) if blocks and blocks[0][0] == "h" else "Privacy report"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) +
            f"\n<p><small>Generated {datetime.now(UTC):%Y-%m-%d}.</small></p></body></html>\n")
