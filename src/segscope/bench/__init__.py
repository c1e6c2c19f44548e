"""``segscope bench``: many methods, one protocol (same splits, metrics and budget), one set of results.

The bench writes results; :func:`segscope.report.render_bench_report` turns them into ``report.html``
(the CLI calls one, then the other).
"""

from segscope.bench.plan import BenchPlan, default_methods, expand_methods
from segscope.bench.results import collect_results, paired_tests
from segscope.bench.runner import run_bench

__all__ = [
    "BenchPlan",
    "collect_results",
    "default_methods",
    "expand_methods",
    "paired_tests",
    "run_bench",
]
