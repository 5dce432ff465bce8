"""The report's pictures (matplotlib, no display): ED and ES mid-ventricular slice with contours, the LV/RV
volume-time curve, the per-slice QC heat map and the measures against normal ranges, on one A4 page."""

import math
import textwrap
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")  # the server and the CLI draw to files only

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cmrassist_server.imaging.imageio import Orientation, frames_of  # noqa: E402
from cmrassist_server.reporting.report import unit_of  # noqa: E402
from cmrassist_server.reporting.study import Phase, StudyData  # noqa: E402
from CMRAssistCore.labels import COLOURS, LV_CAVITY, SEGMENT_NAMES  # noqa: E402

NAMES = {
    "lv_edv_ml": "LV EDV",
    "lv_esv_ml": "LV ESV",
    "lv_sv_ml": "LV SV",
    "lv_ef_pct": "LV EF",
    "lv_mass_g": "LV mass",
    "rv_edv_ml": "RV EDV",
    "rv_esv_ml": "RV ESV",
    "rv_sv_ml": "RV SV",
    "rv_ef_pct": "RV EF",
    "lv_edv_ml_m2": "LV EDV index",
    "lv_esv_ml_m2": "LV ESV index",
    "lv_sv_ml_m2": "LV SV index",
    "lv_mass_g_m2": "LV mass index",
    "rv_edv_ml_m2": "RV EDV index",
    "rv_esv_ml_m2": "RV ESV index",
    "rv_sv_ml_m2": "RV SV index",
}
STATUS_COLOUR = {"low": "#d9534f", "high": "#d9534f", "normal": "#3c763d"}


def _canonical(phase: Phase):
    orientation = Orientation.of(phase.image)
    return orientation.to_canonical(frames_of(phase.image)[0]), orientation.to_canonical(phase.label), orientation


def mid_slice(label: np.ndarray) -> int:
    """The middle of the slices that hold LV cavity (the stack's middle when none does)."""
    slices = np.flatnonzero((label == LV_CAVITY).any(axis=(1, 2)))
    return int(slices[len(slices) // 2]) if len(slices) else label.shape[0] // 2


def draw_slice(ax, phase: Phase, z: int) -> None:
    image, label, orientation = _canonical(phase)
    z = min(z, image.shape[0] - 1)
    lo, hi = np.percentile(image[z], (1, 99.5))
    aspect = orientation.spacing[1] / orientation.spacing[2]
    ax.imshow(image[z], cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="bilinear")
    for value in SEGMENT_NAMES:
        mask = label[z] == value
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=[COLOURS[value]], linewidths=1.2)
    frame = f", frame {phase.frame}" if phase.frame else ""
    ax.set_title(f"{phase.name}{frame}, slice {z + 1}/{image.shape[0]}", fontsize=9)
    ax.set_axis_off()


def draw_curve(ax, report: Dict[str, Any]) -> None:
    curve = report.get("volume_curve")
    m = report["measures"]
    ed, es = report["ed"]["frame"], report["es"]["frame"]
    if curve:
        ax.plot(curve["frame"], curve["lv_ml"], "-o", ms=2.5, color=COLOURS[3], label="LV cavity")
        ax.plot(curve["frame"], curve["rv_ml"], "-o", ms=2.5, color=COLOURS[1], label="RV cavity")
    else:  # only the two segmented phases
        xs = [ed or 1, es or 2]
        ax.plot(xs, [m["lv_edv_ml"], m["lv_esv_ml"]], "o--", color=COLOURS[3], label="LV cavity")
        ax.plot(xs, [m["rv_edv_ml"], m["rv_esv_ml"]], "o--", color=COLOURS[1], label="RV cavity")
    for frame, text in ((ed, "ED"), (es, "ES")):
        if frame:
            ax.axvline(frame, color="0.5", lw=0.8, ls=":")
            ax.text(frame, ax.get_ylim()[1], text, ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("cine frame", fontsize=8)
    ax.set_ylabel("volume (ml)", fontsize=8)
    ax.set_title("Volume over the cardiac cycle", fontsize=9, pad=12)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)


def draw_qc(ax, report: Dict[str, Any]) -> None:
    """Slices x (ED, ES) x class: predicted Dice with a learned QC model, else 1 where no rule flags the slice."""
    columns, cells, flagged = [], [], []
    for phase in ("ed", "es"):
        qc = report[phase]["qc"]
        for name, short in (("lv_cavity", "LV"), ("lv_myocardium", "MYO"), ("rv_cavity", "RV")):
            columns.append(f"{phase.upper()} {short}")
            cells.append(
                [s.get(name) if s.get(name) is not None else (0.0 if s["flagged"] else 1.0) for s in qc["slices"]]
            )
            flagged.append([s["flagged"] for s in qc["slices"]])
    n = max(len(c) for c in cells)
    grid = np.full((n, len(columns)), np.nan)
    for j, column in enumerate(cells):
        grid[: len(column), j] = column
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for j, column in enumerate(flagged):
        for i, flag in enumerate(column):
            if flag:
                ax.text(j, i, "!", ha="center", va="center", fontsize=7, fontweight="bold")
    ax.set_xticks(range(len(columns)), columns, fontsize=6, rotation=45)
    ax.set_yticks(range(n), [str(i + 1) for i in range(n)], fontsize=6)
    ax.set_ylabel("slice (base to apex as stored)", fontsize=7)
    learned = report["ed"]["qc"]["learned"]
    ax.set_title("QC per slice: " + ("predicted Dice" if learned else "rule checks (no QC model)"), fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)


def _value(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f} {unit}".strip()


def table_rows(report: Dict[str, Any]) -> List[List[str]]:
    """measure, value, indexed value (with its range where one is known), normal range, status, QC-corrected."""
    corrected = report["qc_function"]["corrected"]
    ranges = {r["measure"]: r for r in report["normal_ranges"]}
    rows = []
    for measure in report["measures"]:
        row = ranges[measure]
        key = f"{measure[:-3]}_ml_m2" if measure.endswith("_ml") else "lv_mass_g_m2" if measure == "lv_mass_g" else ""
        indexed = report["indexed"].get(key)
        index_text = _value(indexed, unit_of(key)) if indexed is not None else "-"
        if key in ranges and "low" in ranges[key]:
            index_text += f" ({ranges[key]['low']:g}-{ranges[key]['high']:g})"
        limits = f"{row['low']:g}-{row['high']:g}" if "low" in row else "-"
        qc = corrected.get(measure)
        rows.append(
            [
                NAMES.get(measure, measure),
                _value(row["value"], unit_of(measure)),
                index_text,
                limits,
                str(row["status"]),
                _value(qc) if isinstance(qc, (int, float)) else "-",
            ]
        )
    return rows


def draw_table(ax, report: Dict[str, Any]) -> None:
    rows = table_rows(report)
    table = ax.table(
        cellText=rows,
        colLabels=["measure", "value", "per m² BSA (normal)", "normal", "", "QC-corrected"],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        colWidths=[0.16, 0.14, 0.26, 0.14, 0.12, 0.14],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.25)
    for i, row in enumerate(rows, start=1):
        colour = STATUS_COLOUR.get(row[4])
        if colour:
            table[i, 4].get_text().set_color(colour)
    ax.set_axis_off()
    sexes = {"M": "men", "F": "women"}.get(report.get("sex") or "", "men or women (sex unknown: widest)")
    ax.set_title(f"Measures against normal ranges ({sexes}, mean ± 2 SD)", fontsize=9)


def _header(report: Dict[str, Any]) -> str:
    bsa = f"BSA {report['bsa_m2']:.2f} m² (Mosteller)" if report.get("bsa_m2") else "BSA unknown (no height/weight)"
    hr = f", heart rate {report['heart_rate_bpm']:.0f} bpm" if report.get("heart_rate_bpm") else ""
    who = {p: report[p].get("annotator") or report[p]["label_tag"] for p in ("ed", "es")}
    return (
        f"Patient {report.get('patient') or '-'}   study {report.get('study_date') or '-'}   sex "
        f"{report.get('sex') or '-'}   {bsa}{hr}\nImage {report['image']}; ED label: {report['ed']['label_tag']} "
        f"({who['ed']}), ES label: {report['es']['label_tag']} ({who['es']}); ES: {report['es_method']}"
    )


def report_figure(data: StudyData, report: Dict[str, Any], *, with_table: bool = True) -> Figure:
    """The one-page report (A4 portrait); without the table for the HTML page, which has its own."""
    fig = Figure(figsize=(8.27, 11.69 if with_table else 7.2), dpi=100)
    grid = fig.add_gridspec(
        3 if with_table else 2,
        3,
        height_ratios=[1, 1.05, 1.25][: 3 if with_table else 2],
        left=0.07,
        right=0.97,
        top=0.9 if with_table else 0.86,
        bottom=0.06,
        hspace=0.4,
        wspace=0.3,
    )
    fig.suptitle("CMRAssist: short-axis cine study report", fontsize=13, x=0.07, ha="left")
    fig.text(0.07, 0.955 if with_table else 0.93, _header(report), fontsize=7.5, va="top")
    _, ed_label, _ = _canonical(data.ed)
    z = mid_slice(ed_label)
    draw_slice(fig.add_subplot(grid[0, 0]), data.ed, z)
    draw_slice(fig.add_subplot(grid[0, 1]), data.es, z)
    draw_curve(fig.add_subplot(grid[0, 2]), report)
    draw_qc(fig.add_subplot(grid[1, 0:2]), report)
    _qc_text(fig.add_subplot(grid[1, 2]), report)
    if with_table:
        draw_table(fig.add_subplot(grid[2, :]), report)
        fig.text(0.07, 0.015, textwrap.fill(footnote(report), 150), fontsize=6, va="bottom", color="0.3")
    return fig


def _qc_text(ax, report: Dict[str, Any]) -> None:
    lines: List[str] = []
    for phase in ("ed", "es"):
        qc = report[phase]["qc"]
        flagged = ", ".join(str(s + 1) for s in qc["flagged_slices"]) or "none"
        lines.append(f"{phase.upper()}: flagged slices {flagged}")
        for slice_index, reasons in list(qc["reasons"].items())[:3]:
            lines.append(f"  {int(slice_index) + 1}: {reasons[0][:44]}")
    ax.text(0, 1, "\n".join(lines), fontsize=7, va="top", family="monospace")
    ax.set_title("QC summary", fontsize=9)
    ax.set_axis_off()


def footnote(report: Dict[str, Any]) -> str:
    sources = sorted({str(r["source"]) for r in report["normal_ranges"] if r.get("source")})
    return (
        "Normal ranges: " + "; ".join(sources) + ". Volumes by voxel counting; LV mass at "
        f"{report['myocardial_density_g_per_ml']} g/ml; papillary muscles counted with the cavity. "
        "Research software: check every contour before clinical use."
    )
