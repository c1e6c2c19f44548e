"""HTML reports: one trained run (``render_run_report``) and a bench of many methods."""

from segscope.report.run_report import render_run_report

__all__ = ["render_run_report"]
