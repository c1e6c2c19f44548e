"""Self-contained HTML reports (figures embedded): one trained run, or a bench of many methods."""

from segscope.report import figures
from segscope.report.bench_report import render_bench_report
from segscope.report.run_report import render_run_report

__all__ = ["figures", "render_bench_report", "render_run_report"]
