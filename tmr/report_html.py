"""HTML pieces of the run report: inlined style sheet, tables, figures, the page frame.

Everything a page needs is inlined (CSS here, figures as base64 PNG) so that
``report.html`` opens offline and can be mailed as one file. The fonts are the
system's (no web fonts).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence

__all__ = ["CSS", "figure", "page", "png_base64", "slug", "table"]

CSS = """
:root { --ink:#1f2430; --muted:#5b6372; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff;
        --accent:#3b5bdb; --ok:#2b8a3e; --okbg:#e6f4ea; --bad:#c92a2a; --badbg:#fdecec;
        --na:#6b7280; --nabg:#eef0f3; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
             Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 24px 60px; }
header.run { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
             padding: 20px 24px; margin-bottom: 20px; }
header.run h1 { margin: 0 0 4px; font-size: 26px; }
header.run .sub { color: var(--muted); margin: 0 0 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 12px 24px; margin-bottom: 20px; }
nav.toc h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .06em;
             color: var(--muted); margin: 4px 0 6px; border: 0; }
nav.toc ol { margin: 0; padding-left: 20px; columns: 2; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 8px 24px 20px; margin-bottom: 20px; }
h2 { font-size: 20px; margin: 16px 0 8px; padding-bottom: 6px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p { margin: 8px 0; }
.note { color: var(--muted); font-size: 13.5px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--bg); padding: 1px 4px; border-radius: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 10px 0; font-size: 14px; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:hover { background: #fafbfc; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-weight: 600;
         font-size: 12.5px; white-space: nowrap; }
.holds { color: var(--ok); background: var(--okbg); }
.fails { color: var(--bad); background: var(--badbg); }
.not-testable { color: var(--na); background: var(--nabg); }
.reason { display: block; color: var(--muted); font-size: 13px; margin-top: 3px; }
figure { margin: 18px 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto;
             border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 8px; }
figcaption b { color: var(--ink); }
table.claims td:nth-child(3), table.claims td:nth-child(1) { white-space: nowrap; }
table.claims td:nth-child(5) { font-variant-numeric: tabular-nums; }
footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 30px; }
"""


def slug(title: str) -> str:
    """An HTML id from a section title: lower case, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def png_base64(fig: object, dpi: int = 110) -> str:
    """A matplotlib figure as base64 PNG text (for ``<img src="data:image/png;base64,...">``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure(png_b64: str, caption_html: str, alt: str) -> str:
    """An embedded PNG with its caption (``caption_html`` is inserted as given)."""
    return (f'<figure><img src="data:image/png;base64,{png_b64}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption_html}</figcaption></figure>")


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
          numeric: Sequence[bool] | None = None, css_class: str = "") -> str:
    """An HTML table; cells are inserted as given (escape text first), ``numeric``
    columns are right-aligned."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if n else f"<td>{c}</td>"
                         for c, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows)
    cls = f' class="{css_class}"' if css_class else ""
    return (f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def page(title: str, header_html: str, sections: Sequence[tuple[str, str]],
         footer_html: str = "") -> str:
    """The whole page: header, a table of contents of ``sections`` ((title, html) pairs,
    each becoming a ``<section id=...>`` with an ``<h2>``), then the sections."""
    ids: list[str] = []
    for t, _ in sections:
        base, k = slug(t), 2
        sid = base
        while sid in ids:
            sid, k = f"{base}-{k}", k + 1
        ids.append(sid)
    toc = "".join(f'<li><a href="#{i}">{html.escape(t)}</a></li>'
                  for i, (t, _) in zip(ids, sections, strict=True))
    body = "".join(f'<section id="{i}"><h2>{html.escape(t)}</h2>{h}</section>'
                   for i, (t, h) in zip(ids, sections, strict=True))
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"{header_html}<nav class=\"toc\"><h2>Contents</h2><ol>{toc}</ol></nav>"
            f"{body}<footer>{footer_html}</footer></main></body></html>\n")
