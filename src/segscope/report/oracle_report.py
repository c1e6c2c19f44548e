"""The bench report's label-free quality section: what the per-fold quality oracles say.

Per method, the correlation of the oracle's predicted quality with the true per-image metric and a
scatter plot of the two; the ``oracle-select`` pseudo-method (per image, the method the oracle rates
best) against the best single method; and "look here first", the test images whose best predicted
quality is lowest. The numbers come from :func:`segscope.bench.oracle_results.oracle_summary`.
"""

from __future__ import annotations

from typing import Any

from segscope.bench.oracle_results import FLAGS_SHOWN, quality_pairs
from segscope.report import figures
from segscope.report.html import esc, figure_block, fmt

SELECT_NOTE = (
    " The oracle-select row (unranked) takes, for each test image, the method the oracle rates best; its "
    "values are means of per-image values."
)


def oracle_section(res: dict[str, Any]) -> list[str]:
    """HTML blocks for ``res["oracle"]`` (none without it); ``res`` as :func:`collect_results` returns."""
    info = res.get("oracle")
    if not info:
        return []
    metric, gain, counts = info["metric"], info["gain"], info["choice_counts"]
    trained = ", ".join(f"{fold}: {o['train_images']}" for fold, o in res["plan"].get("oracles", {}).items())
    parts = [
        "<h2>Label-free quality (oracle)</h2><p class='meta'>A quality oracle (Fernandes, Cruz &amp; "
        f"Cardoso, IJCNN 2018; {esc(res['plan'].get('oracle'))}) trained per fold on that fold's training "
        f"images only ({esc(trained)} images) scored every test "
        f"prediction without its labels. Compared here with the true per-image {esc(metric)}; "
        "<b>oracle-select</b> takes, for each image, the method the oracle rates best.</p>"
        "<table id='oracle'><tr><th class='text'>method</th><th>Pearson</th><th>Spearman</th><th>n</th>"
        f"<th>chosen (images)</th><th>mean {esc(metric)}</th></tr>",
    ]
    for m, c in info["correlation"].items():
        parts.append(
            f"<tr><td class='text'>{esc(m)}</td><td>{fmt(c['pearson'], 3)}</td><td>{fmt(c['spearman'], 3)}"
            f"</td><td>{c['n']}</td><td>{counts.get(m, 0)}</td><td>{fmt(gain['means'].get(m))}</td></tr>"
        )
    parts.append(
        f"<tr><td class='text'><b>oracle-select</b></td><td></td><td></td><td>{gain['n']}</td>"
        f"<td>{sum(counts.values())}</td><td>{fmt(gain['select_mean'])}</td></tr></table>"
        f"<p>oracle-select against the best single method ({esc(gain['best_single'] or '–')}): "
        f"<b>{_signed(gain['value'])}</b> mean per-image {esc(metric)}, on the {gain['n']} images every "
        "method was scored on.</p>"
    )
    points = {m: quality_pairs(res["cells"][m], metric) for m in info["correlation"]}
    fig = figures.quality_scatter(points, metric=metric)
    parts.append(figure_block(figures.figure_png(fig), f"predicted quality against true {metric}"))
    parts.append(
        "<h3>Look here first</h3><p class='meta'>the test images whose best predicted quality is lowest: "
        "even the method the oracle prefers looks poor there.</p><table id='flags'><tr><th>#</th>"
        "<th class='text'>image</th><th class='text'>fold</th><th>best predicted quality</th>"
        "<th class='text'>best method</th></tr>"
    )
    for i, f in enumerate(info["flags"][:FLAGS_SHOWN], 1):
        parts.append(
            f"<tr><td>{i}</td><td class='text'>{esc(f['image'])}</td><td class='text'>{esc(f['fold'])}</td>"
            f"<td>{fmt(f['best_quality'], 3)}</td><td class='text'>{esc(f['method'])}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _signed(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:+.4f}"
