"""``segscope bench``: many methods, one protocol (same splits, metrics and budget), one report."""

from segscope.bench.plan import BenchPlan, default_methods, expand_methods
from segscope.bench.results import collect_results, paired_tests
from segscope.bench.runner import run_bench
from segscope.report.bench_report import render_bench_report

__all__ = [
    "BenchPlan",
    "collect_results",
    "default_methods",
    "expand_methods",
    "paired_tests",
    "render_bench_report",
    "run_bench",
]
