"""``segscope bench``: many methods, one protocol, one report."""

from segscope.bench.report import render_bench_report
from segscope.bench.runner import BenchPlan, default_methods, run_bench

__all__ = ["BenchPlan", "default_methods", "render_bench_report", "run_bench"]
