"""Blocks -> report.md and a self-contained report.html (figures embedded as data URIs).

A block is a tuple (kind, *content): ("h1" | "h2" | "h3", text), ("p", text), ("warnings", [text, ...]),
("table", DataFrame), ("figure", name, caption) for figures/<name>.png beside the Markdown file.
"""

import base64
import html
import re
from pathlib import Path

import pandas as pd

from workflow_scripts.results import atomic_write_text

# How every table shows a value that is not there (None, NaN, an empty string): one mark for the whole report;
# missing(reason) adds why where a section knows it
MISSING = "—"
NUMBER_FORMATS = {"ms": "{:.3f}", "x": "{:.2f}×", "pct": "{:.1%}", "rate": "{:,.1f}", "s": "{:.1f}",
                  "sci": "{:.2e}", "ratio": "{:.3f}"}
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         # cells wrap only between words and after '_', '/', '+' or '::' (line_breaks), a header never mid-word
         "table{border-collapse:collapse;font-size:11px;max-width:100%}"
         "td,th{border:1px solid #ccc;padding:2px 4px}"
         "code{background:#f3f3f3;padding:0 2px}nav{columns:2;font-size:14px}"
         ".warn{background:#fff3cd;border-left:5px solid #d39e00;padding:6px;font-weight:bold}"
         "img{max-width:100%}")


def fmt(kind: str):
    """A formatter for one kind of number (keys of NUMBER_FORMATS); NaN and None become MISSING."""
    return lambda value: MISSING if pd.isna(value) else NUMBER_FORMATS[kind].format(value)


def missing(reason: str | None = None) -> str:
    """A table cell without a value, with why where known: `— (not paired)`."""
    return f"{MISSING} ({reason})" if reason else MISSING


def is_missing(value) -> bool:
    """None, NaN, pandas' NA or an empty string."""
    return value is None or (isinstance(value, str) and not value.strip()) or (
        not isinstance(value, str) and bool(pd.api.types.is_scalar(value)) and bool(pd.isna(value)))


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as the report shows it: every missing value (is_missing) as MISSING, other values as they are."""
    return frame.map(lambda value: MISSING if is_missing(value) else value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table; missing values as MISSING, `|` escaped."""
    cells = shown(frame).map(str)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Text as HTML: escaped, with Markdown's `code` spans as <code> (never literal backticks)."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(str(text)))


def anchor(text: str) -> str:
    """The HTML id of a heading (the table of contents links to it)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _heading(kind, text, figure_dir):
    return f"{'#' * int(kind[1])} {text}", f"<{kind} id='{anchor(text)}'>{_inline(text)}</{kind}>"


def _paragraph(kind, text, figure_dir):
    return text, f"<p>{_inline(text)}</p>"


def _warnings(kind, warnings, figure_dir):
    return ("\n".join(f"> **⚠ {w}**" for w in warnings),
            "".join(f'<p class="warn">⚠ {_inline(w)}</p>' for w in warnings))


def _breakable(cell: str) -> str:
    """A cell's HTML with <wbr> after each '_', '/', '+' and '::' and every 12 characters of a run of 25 or more
    letters and digits, in its text (never inside a tag such as </code>)."""
    def text(part: str) -> str:
        part = re.sub(r"(_|/|\+(?=[A-Za-z])|::)", r"\1<wbr>", part)  # "+1.250" stays whole
        return re.sub(r"[A-Za-z0-9]{25,}", lambda run: "<wbr>".join(
            run[0][i:i + 12] for i in range(0, len(run[0]), 12)), part)

    return re.sub(r"(<[^>]*>)|([^<]+)", lambda part: part[1] or text(part[2]), cell)


def line_breaks(table_html: str) -> str:
    """The table's cells with line-break opportunities (_breakable): raw column names (batch_size, samples/s)
    and identifiers (kernel names, a compiled graph's hash) wrap at their parts, a header never mid-word, and
    not at all where there is room. Numbers have none of these, so none is cut in two."""
    return re.sub(r"<(t[hd])>(.*?)</\1>", lambda cell: f"<{cell[1]}>{_breakable(cell[2])}</{cell[1]}>", table_html,
                  flags=re.S)


def _table(kind, frame, figure_dir):
    return markdown_table(frame), line_breaks(re.sub(r"`([^`<]*)`", r"<code>\1</code>",
                                                       shown(frame).to_html(index=False, na_rep=MISSING, border=0)))


def _figure(kind, name, caption, figure_dir):
    data = base64.b64encode((figure_dir / f"{name}.png").read_bytes()).decode()
    return (f"![{caption}](figures/{name}.png)\n\n*{caption}*",
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


# block kind -> (kind, *content, figure_dir) -> (Markdown, HTML)
RENDERERS = {"h1": _heading, "h2": _heading, "h3": _heading, "p": _paragraph, "warnings": _warnings,
             "table": _table, "figure": _figure}


def render(blocks: list[tuple], figure_dir: Path, out_md: str, out_html: str) -> None:
    """Write the blocks to out_md and out_html (atomically); figure_dir holds the figures' PNGs."""
    md, body = zip(*(RENDERERS[kind](kind, *content, figure_dir) for kind, *content in blocks))
    body = list(body)
    sections = [content[0] for kind, *content in blocks if kind == "h2"]
    if sections:  # a table of contents after the title: the page is several screens tall
        toc = "<nav><b>Contents</b><ol>" + "".join(f"<li><a href='#{anchor(t)}'>{_inline(t)}</a></li>"
                                                    for t in sections) + "</ol></nav>"
        body.insert(1 if blocks[0][0] == "h1" else 0, toc)
    atomic_write_text(out_md, "\n\n".join(md) + "\n")
    atomic_write_text(out_html, f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>inferbench report"
                                f"</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
