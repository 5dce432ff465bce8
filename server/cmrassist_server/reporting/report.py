"""The study report as data: LV/RV EDV, ESV, SV, EF and LV mass (``CMRAssistCore.measures`` on the ED and ES
labels), indexed by body surface area when height and weight are known, the QC summary of both phases with the
QC-corrected function, the measures against normal ranges, and the volume-time curve; JSON and CSV."""

import csv
import io
import math
import time
from typing import Any, Dict, Optional

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.store import cardiac_function
from cmrassist_server.reporting.ranges import against_ranges
from cmrassist_server.reporting.study import Phase, StudyData
from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML, ventricular_function

SCHEMA_VERSION = 1
UNITS = {"ml": "ml", "pct": "%", "g": "g", "ml_m2": "ml/m²", "g_m2": "g/m²"}
INDEXED = ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml")


def _number(info: Dict[str, Any], *keys: str) -> Optional[float]:
    for key in keys:
        try:
            value = float(info[key])
        except (KeyError, TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def body_surface_area_m2(height_cm: Optional[float], weight_kg: Optional[float]) -> Optional[float]:
    """Mosteller's body surface area: sqrt(height cm x weight kg / 3600)."""
    if not height_cm or not weight_kg:
        return None
    return math.sqrt(height_cm * weight_kg / 3600.0)


def _canonical(phase: Phase):
    orientation = Orientation.of(phase.image)
    return orientation.to_canonical(phase.label), orientation.spacing


def _phase_entry(phase: Phase, qc: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "image": phase.image_id,
        "frame": phase.frame,
        "label_tag": phase.tag,
        "annotator": phase.label_info.get("annotator"),
        "expertise": phase.label_info.get("expertise"),
        "qc": {
            "learned": qc["learned"],
            "flagged_slices": qc["summary"]["flagged_slices"],
            "reasons": {s["slice"]: s["reasons"] for s in qc["slices"] if s["reasons"]},
            "worst_dice_3d": qc["summary"]["worst_dice_3d"],
            "volumes": qc["volumes"],
            "slices": [
                {
                    "slice": s["slice"],
                    "flagged": s["flagged"],
                    **{name: c.get("dice") for name, c in s["classes"].items()},
                }
                for s in qc["slices"]
            ],
        },
    }


def build_report(data: StudyData, checker: QualityChecker) -> Dict[str, Any]:
    """The report of one subject (see the module docstring)."""
    start = time.time()
    ed_label, ed_spacing = _canonical(data.ed)
    es_label, es_spacing = _canonical(data.es)
    measures = ventricular_function(ed_label, es_label, ed_spacing, es_spacing)
    height = _number(data.info, "height_cm", "height")
    weight = _number(data.info, "weight_kg", "weight")
    bsa = body_surface_area_m2(height, weight)
    indexed = (
        {f"{k[:-3]}_ml_m2" if k.endswith("_ml") else "lv_mass_g_m2": measures[k] / bsa for k in INDEXED} if bsa else {}
    )
    qc_ed, qc_es = checker.check(data.ed.image, data.ed.label), checker.check(data.es.image, data.es.label)
    sex = str(data.info.get("sex", "")).upper()[:1] or None
    return {
        "schema_version": SCHEMA_VERSION,
        "image": data.image_id,
        "patient": data.info.get("patient"),
        "study_date": data.info.get("study_date"),
        "sex": sex,
        "height_cm": height,
        "weight_kg": weight,
        "bsa_m2": bsa,
        "heart_rate_bpm": _number(data.info, "heart_rate_bpm"),
        "ed": _phase_entry(data.ed, qc_ed),
        "es": _phase_entry(data.es, qc_es),
        "es_method": data.es_method,
        "measures": measures,
        "indexed": indexed,
        "myocardial_density_g_per_ml": MYOCARDIAL_DENSITY_G_PER_ML,
        "qc_function": _with_stroke_volumes(cardiac_function(qc_ed, qc_es)),
        "normal_ranges": against_ranges({**measures, **indexed}, sex),
        "volume_curve": data.curve,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - start, 3),
    }


def _with_stroke_volumes(function: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    for values in function.values():
        for side in ("lv", "rv"):
            values[f"{side}_sv_ml"] = round(values[f"{side}_edv_ml"] - values[f"{side}_esv_ml"], 2)
    return function


def unit_of(measure: str) -> str:
    for suffix in ("ml_m2", "g_m2", "pct", "ml", "g"):
        if measure.endswith("_" + suffix):
            return UNITS[suffix]
    return ""


def report_csv(report: Dict[str, Any]) -> str:
    """One row per measure: value, unit, normal range and flag, and the QC-corrected value where QC gives one."""
    corrected = report["qc_function"]["corrected"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["image", "measure", "value", "unit", "normal_low", "normal_high", "status", "qc_corrected", "range_source"]
    )
    for row in report["normal_ranges"]:
        measure = row["measure"]
        writer.writerow(
            [
                report["image"],
                measure,
                _fmt(row["value"]),
                unit_of(measure),
                row.get("low", ""),
                row.get("high", ""),
                row["status"],
                _fmt(corrected.get(measure)),
                row.get("source", ""),
            ]
        )
    return out.getvalue()


def _fmt(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.2f}"
