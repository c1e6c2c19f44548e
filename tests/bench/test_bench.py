import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from segscope import register
from segscope.bench import BenchPlan, run_bench
from segscope.engine.validation import make_splits
from segscope.errors import UserError
from segscope.segmenter import Segmenter

SEEN_TRAIN: dict[str, list[list[str]]] = {}


class MeanThreshold(Segmenter):
    """Test-only: foreground where the grey value exceeds the training images' mean."""

    name = "test_mean_threshold"

    def fit(self, train, val=None, **kwargs):
        SEEN_TRAIN.setdefault(self.name, []).append(list(train.stems))
        self.level = float(np.mean([train.load_image(i).mean() for i in range(len(train))]))
        return self

    def predict(self, image):
        return (image[..., 0] > self.level).astype(np.int64)


class Broken(MeanThreshold):
    name = "test_broken"

    def fit(self, train, val=None, **kwargs):
        raise RuntimeError("this method always fails")


class Darker(MeanThreshold):
    name = "test_darker"

    def fit(self, train, val=None, **kwargs):
        super().fit(train)
        self.level -= 40  # a worse threshold: most of the background becomes foreground
        return self


for cls in (MeanThreshold, Broken, Darker):
    register(cls.name, family="classical", task="binary")(
        lambda num_classes=2, _c=cls, **o: _c(num_classes, **o)
    )


def _plan(data: Path, methods, **kw) -> BenchPlan:
    return BenchPlan(data=str(data), methods=list(methods), cv="kfold:3", workers=1, gallery=2, **kw)


def test_protocol_identical_splits_isolation_and_resume(disc_dataset: Path, tmp_path: Path):
    SEEN_TRAIN.clear()
    out = tmp_path / "bench"
    results = run_bench(
        _plan(disc_dataset, ["test_mean_threshold", "test_darker", "test_broken"]), out, progress=False
    )
    # identical training folds for every method, disjoint from the test images
    assert SEEN_TRAIN["test_mean_threshold"] == SEEN_TRAIN["test_darker"]
    splits = json.loads((out / "splits.json").read_text())["splits"]
    assert len(splits) == 3 and all(not set(s["train"]) & set(s["test"]) for s in splits)
    assert sorted(i for s in splits for i in s["test"]) == list(range(8))
    # the broken method failed alone, and its error is in the report
    assert [e["method"] for e in results["leaderboard"]] == ["test_mean_threshold", "test_darker"]
    assert results["errors"]["test_broken"][0] == "RuntimeError: this method always fails"
    html = (out / "report.html").read_text()
    assert "this method always fails" in html and html.count("data:image/png;base64,") >= 5
    assert "<td>test_mean_threshold</td>" in html
    # resume: finished cells are not fitted again
    SEEN_TRAIN.clear()
    run_bench(_plan(disc_dataset, ["test_mean_threshold", "test_darker", "test_broken"]), out, progress=False)
    assert "test_mean_threshold" not in SEEN_TRAIN and len(SEEN_TRAIN.get("test_broken", [])) == 0


def test_paired_test_matches_scipy(disc_dataset: Path, tmp_path: Path):
    results = run_bench(
        _plan(disc_dataset, ["test_mean_threshold", "test_darker"]), tmp_path / "b", progress=False
    )
    test = results["paired_tests"][0]
    cells = results["cells"]
    a = [r["pixel_error"] for c in cells[test["best"]] for r in c["per_image"]]
    b = [r["pixel_error"] for c in cells[test["other"]] for r in c["per_image"]]
    assert test["n"] == 8 and test["p_value"] == pytest.approx(wilcoxon(a, b).pvalue)
    assert test["best"] == "test_mean_threshold"
    board = (tmp_path / "b" / "leaderboard.csv").read_text().splitlines()
    assert board[0].startswith("method,folds,pixel_error,pixel_error_sd") and len(board) == 3


def test_binary_method_skipped_on_multiclass(tmp_path: Path):
    from PIL import Image

    root = tmp_path / "multi"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.tile(np.arange(3, dtype=np.uint8), (8, 3))[:, :8]).save(
            root / "masks" / f"{i}.png"
        )
    (root / "dataset.yaml").write_text("classes: [a, b, c]\n")
    results = run_bench(_plan(root, ["test_mean_threshold"]), tmp_path / "m", progress=False)
    assert "binary method" in results["plan"]["skipped"]["test_mean_threshold"]


def test_split_counts():
    assert len(make_splits(7, "loo")) == 7
    assert len(make_splits(6, "lpo:2")) == 15  # C(6, 2)
    assert [len(s.test) for s in make_splits(10, "kfold:5")] == [2] * 5
    groups = ["a", "a", "b", "b", "c", "c"]
    for s in make_splits(6, "group-kfold:3", groups=groups):
        assert not {groups[i] for i in s.train} & {groups[i] for i in s.test}
    with pytest.raises(UserError, match=r"C\(30, 3\) = 4060 splits exceed the cap of 50"):
        make_splits(30, "lpo:3")
    with pytest.raises(UserError, match="unknown validation scheme"):
        make_splits(5, "bootstrap")
