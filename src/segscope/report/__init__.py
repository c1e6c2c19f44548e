"""Self-contained HTML reports (figures embedded): one trained run, or a bench of many methods.

The bench report lives in :mod:`segscope.report.bench_report` (imported lazily: it needs the bench).
"""

from segscope.report import figures
from segscope.report.run_report import render_run_report

__all__ = ["figures", "render_run_report"]
