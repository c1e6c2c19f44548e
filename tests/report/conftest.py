"""A small finished bench (two working test-only methods and a failing one) shared by the report tests."""

from __future__ import annotations

import pytest

from segscope.bench import BenchPlan, run_bench
from segscope.report import render_bench_report
from tests.bench.fake_methods import BROKEN, DARKER, MEAN, registered
from tests.conftest import write_folder_dataset


@pytest.fixture(scope="package", autouse=True)
def test_only_methods():
    from segscope.factory import list_models

    list_models()
    with registered():
        yield


@pytest.fixture(scope="package")
def small_bench(test_only_methods, tmp_path_factory):
    """``(bench dir, results)`` of MEAN, DARKER and BROKEN on 8 disc images, kfold:2, 2 gallery images."""
    root = tmp_path_factory.mktemp("report_bench")
    data = write_folder_dataset(root / "discs", n=8)
    plan = BenchPlan(
        data=str(data), methods=[MEAN, DARKER, BROKEN], cv="kfold:2", workers=1, gallery=2, time_budget_s=10
    )
    out = root / "bench"
    results = run_bench(plan, out, progress=False)
    render_bench_report(out, results=results)
    return out, results
