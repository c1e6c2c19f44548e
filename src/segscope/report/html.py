"""Small helpers that build self-contained HTML pages (inline CSS, images as base64 data URIs)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1200px;
 padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}
h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .55rem;text-align:right;vertical-align:top}
th{background:#f4f4f4;font-weight:600}
td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left}
img{max-width:100%}
.meta{color:#666;font-size:.88rem}
.warning{background:#fff4e5;border-left:4px solid #e8a33d;padding:.4rem .7rem}
.best{font-weight:700;color:#0a5}
.err{color:#b00}
.sd{color:#888;font-size:.8em}
.figs{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.figs figure{margin:0}
figcaption{font-size:.8rem;color:#555;text-align:center}
.scroll{overflow-x:auto}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e8eef8}
table.gallery td{text-align:center;padding:.2rem;border:none}
table.gallery img{width:170px;max-width:none;height:auto;display:block;margin:0 auto}
table.gallery img.errors,body.show-errors table.gallery img.overlay{display:none}
body.show-errors table.gallery img.errors{display:block}
button{font:inherit;font-size:.85rem;padding:.1rem .5rem;cursor:pointer}
table.gallery th{background:none;border:none;font-size:.8rem;text-align:center}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #999;vertical-align:middle;
 margin:0 .25em 0 .8em}
details pre{white-space:pre-wrap;font-size:.75rem;background:#f8f8f8;padding:.5rem}
code{background:#f4f4f4;padding:.1rem .3rem;word-break:break-all}
"""

# Marks on <body> how many images the page has and how many failed to decode, so a headless browser
# test (--dump-dom) can check that every embedded figure displays.
IMAGE_CHECK_JS = """
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.brokenImages = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
});
"""


def esc(value: Any) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def img_tag(png: bytes | None, alt: str, *, title: str | None = None, css_class: str | None = None) -> str:
    """An ``<img>`` with ``png`` embedded as a base64 data URI ('' when ``png`` is None)."""
    if not png:
        return ""
    attrs = f' title="{esc(title)}"' if title else ""
    attrs += f' class="{esc(css_class)}"' if css_class else ""
    return f'<img alt="{esc(alt)}"{attrs} src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure_block(png: bytes | None, caption: str) -> str:
    """An embedded image with a caption ('' when ``png`` is None)."""
    if not png:
        return ""
    return f"<figure>{img_tag(png, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: fixed digits, '–' for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def swatches(palette: np.ndarray, names: Sequence[str], ignore_index: int | None = None) -> str:
    """A colour legend: one swatch and name per class."""
    parts = []
    for k, name in enumerate(names):
        if k == ignore_index or k >= len(palette):
            continue
        r, g, b = (int(c) for c in palette[k])
        parts.append(f"<span class='swatch' style='background:rgb({r},{g},{b})'></span>{esc(name)}")
    return "<p class='meta'>" + "".join(parts) + "</p>"


def page(title: str, body: Sequence[str], *, extra_style: str = "", script: str = "") -> str:
    """A complete HTML document with the shared style and the image check script."""
    return "\n".join(
        [
            "<!doctype html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{esc(title)}</title><style>{STYLE}{extra_style}</style></head><body>",
            *body,
            f"<script>{IMAGE_CHECK_JS}{script}</script>",
            "</body></html>",
        ]
    )
