"""The report in each format: ``json``, ``csv``, ``pdf`` (one A4 page), ``png`` (the same page) and ``html`` (one
self-contained page: tables as HTML, the pictures embedded)."""

import base64
import html
import io
import json
import math
from typing import Any, Dict, Tuple

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.reporting.figures import NAMES, footnote, report_figure, table_rows
from cmrassist_server.reporting.report import report_csv
from cmrassist_server.reporting.study import StudyData

FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "pdf": "application/pdf",
    "png": "image/png",
    "html": "text/html",
}


def json_safe(value: Any) -> Any:
    """NaN and infinities (an empty cavity's EF) become ``null``: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _figure_bytes(data: StudyData, report: Dict[str, Any], fmt: str, *, with_table: bool = True) -> bytes:
    buffer = io.BytesIO()
    report_figure(data, report, with_table=with_table).savefig(buffer, format=fmt, dpi=130 if fmt == "png" else None)
    return buffer.getvalue()


def render(data: StudyData, report: Dict[str, Any], fmt: str) -> Tuple[bytes, str]:
    """``(content, media type)`` of the report in ``fmt``.

    Raises:
        CMRAssistError: 422 for an unknown format.
    """
    if fmt not in FORMATS:
        raise CMRAssistError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}", 422)
    if fmt == "json":
        return json.dumps(json_safe(report), indent=2).encode(), FORMATS[fmt]
    if fmt == "csv":
        return report_csv(report).encode(), FORMATS[fmt]
    if fmt in ("pdf", "png"):
        return _figure_bytes(data, report, fmt), FORMATS[fmt]
    return report_html(data, report).encode(), FORMATS[fmt]


def report_html(data: StudyData, report: Dict[str, Any]) -> str:
    picture = base64.b64encode(_figure_bytes(data, report, "png", with_table=False)).decode()
    rows = "".join(
        "<tr>"
        + "".join(f"<td class='{html.escape(r[3]) if i == 3 else ''}'>{html.escape(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in table_rows(report)
    )
    qc = "".join(
        f"<li>{p.upper()}: flagged slices {', '.join(str(s + 1) for s in report[p]['qc']['flagged_slices']) or 'none'}"
        f" ({html.escape(str(report[p]['label_tag']))} label by {html.escape(str(report[p].get('annotator') or '-'))})</li>"
        for p in ("ed", "es")
    )
    bsa = f"{report['bsa_m2']:.2f} m²" if report.get("bsa_m2") else "unknown (no height and weight)"
    title = f"CMRAssist report: {report['image']}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}.low,.high{{color:#c9302c;font-weight:bold}}
.normal{{color:#3c763d}}img{{max-width:100%}}small{{color:#555}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Patient {html.escape(str(report.get("patient") or "-"))}, study date {html.escape(str(report.get("study_date") or "-"))},
sex {html.escape(str(report.get("sex") or "-"))}, body surface area {bsa}. ES: {html.escape(report["es_method"])}.</p>
<h2>Measures</h2><table><tr><th>measure</th><th>value</th><th>per m² BSA (normal)</th><th>normal</th><th></th><th>QC-corrected</th></tr>{rows}</table>
<h2>Quality control</h2><ul>{qc}</ul>
<img alt="ED and ES mid slices with contours, volume curve, QC heat map" src="data:image/png;base64,{picture}">
<p><small>{html.escape(footnote(report))}</small></p>
<p><small>Measures: {html.escape(", ".join(NAMES.get(k, k) for k in report["measures"]))}.</small></p>
</body></html>"""
