"""Reports: tables (CSV, JSON, text), plots, overlays and the resource report.

Plain writers over NumPy, matplotlib, Pillow and scikit-image: no config, no MLflow.
:mod:`~segtie.reports.tables` (per-case CSV, summary JSON, the printed table),
:mod:`~segtie.reports.plots` (box plot), :mod:`~segtie.reports.overlays`
(image | ground truth | prediction pictures) and :mod:`~segtie.reports.resources`
(the text of ``segtie report``).
"""

from segtie.reports.overlays import (CLASS_COLORS, PRED_COLOR, THUMBNAIL_HEIGHT, TRUE_COLOR,
                                     save_overlay_grid, save_thumbnail_grid, thumbnail)
from segtie.reports.plots import save_boxplot
from segtie.reports.tables import (PER_CASE_COLUMNS, format_table, write_per_case_csv,
                                   write_summary_json)

__all__ = ["CLASS_COLORS", "PER_CASE_COLUMNS", "PRED_COLOR", "THUMBNAIL_HEIGHT", "TRUE_COLOR",
           "format_table", "save_boxplot", "save_overlay_grid", "save_thumbnail_grid",
           "thumbnail", "write_per_case_csv", "write_summary_json"]
