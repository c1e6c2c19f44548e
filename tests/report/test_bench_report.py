"""The bench report's content: leaderboard rows, embedded images, paired tests, failures; self-contained."""

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from tests.bench.fake_methods import BROKEN, DARKER, MEAN


class _Tables(HTMLParser):
    """Collects every table's rows (cell texts and data-v values) and every img src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._value: str | None = None
        self._count = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._count += 1
            self._table = attrs.get("id") or f"table{self._count}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell, self._value = [], attrs.get("data-v")
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(("".join(self._cell).strip(), self._value))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def parsed(small_bench):
    out, results = small_bench
    parser = _Tables()
    parser.feed((out / "report.html").read_text())
    return parser, results


def test_leaderboard_has_one_row_per_method_with_the_aggregated_numbers(parsed):
    parser, results = parsed
    header, *rows = parser.tables["leaderboard"]
    names = [h for h, _ in header]
    assert names[:4] == ["#", "method", "family", "folds"] and "pixel_error ↓" in names
    assert [row[1][0] for row in rows] == [MEAN, DARKER]
    column = names.index("pixel_error ↓")
    for row, entry in zip(rows, results["leaderboard"]):
        assert float(row[column][1]) == pytest.approx(entry["pixel_error"])  # data-v holds the mean
        assert f"± {entry['pixel_error_sd']:.4f}" in row[column][0]


def test_every_embedded_image_is_a_png(parsed, small_bench):
    parser, _ = parsed
    out, _ = small_bench
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    sizes = [Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size for src in parser.images]
    assert all(w > 0 and h > 0 for w, h in sizes)
    # box plot, heat map, 2 confusion matrices, and per gallery image: input, truth, 2 x (colours, errors)
    assert len(parser.images) == 4 + 2 * 6
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing loaded from outside the file


def test_paired_tests_and_failures_are_shown(parsed, small_bench):
    parser, results = parsed
    (test,) = results["paired_tests"]
    paired = next(t for t in parser.tables.values() if t[0][:2] == [("best", None), ("vs", None)])
    row = [text for text, _ in paired[1]]
    assert row[:3] == [MEAN, DARKER, str(test["n"])] and row[-1] == f"{test['p_value']:.3g}"
    failures = next(t for t in parser.tables.values() if t[0][1:] == [("fold", None), ("error", None)])
    assert [(row[0][0], row[1][0]) for row in failures[1:]] == [(BROKEN, "fold0"), (BROKEN, "fold1")]
    for row in failures[1:]:  # the one-line message, then the traceback folded away
        assert row[2][0].startswith("RuntimeError: this method always failstraceback")
        assert "Traceback (most recent call last)" in row[2][0]


def test_results_json_is_standard_json_and_csv_matches(small_bench):
    out, results = small_bench
    text = (out / "results.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert [e["method"] for e in data["leaderboard"]] == [MEAN, DARKER]
    lines = (out / "leaderboard.csv").read_text().splitlines()
    assert lines[0].startswith("method,folds,failed_folds,pixel_error,pixel_error_sd")
    first = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert first["method"] == MEAN and float(first["pixel_error"]) == pytest.approx(
        np.mean([c["metrics"]["pixel_error"] for c in results["cells"][MEAN]])
    )


def test_a_fewshot_evaluation_in_the_bench_folder_adds_its_section(small_bench, tmp_path):
    import shutil

    from segscope.report import render_bench_report

    out = tmp_path / "bench"
    shutil.copytree(small_bench[0], out)
    score = {"episodes": 500, "mean_iou": 0.4321, "fb_iou": 0.6543, "seconds_per_episode": 0.05,
             "per_class_iou": {"cell": 0.4321}}  # fmt: skip
    fewshot = {
        "protocol": {
            "unseen": ["cell"],
            "dataset": "discs",
            "split": "val",
            "fold": 0,
            "episodes": 500,
            "shots": [1],
            "seed": 0,
            "size": [48, 48],
            "min_pixels": 1,
            "ways": 1,
            "folds": {"folds": [[1]]},
        },  # fmt: skip
        "scores": {"prototypes": {"1-shot": score}},
    }
    (out / "fewshot.json").write_text(json.dumps(fewshot))
    html = render_bench_report(out).read_text()
    assert "Few-shot segmentation: unseen classes cell" in html
    assert "500 fixed test episodes per shot count" in html and "0.432" in html and "0.654" in html
    assert "Leaderboard" in html  # the bench's own sections are still there
