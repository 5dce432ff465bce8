"""Clinical measures of one subject: ventricular function from its ED and ES labels (``CMRAssistCore.measures``,
the same code the Slicer module uses), the QC-corrected values beside them, and the volume-time curve."""

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from cmrassist_server.qc.store import cardiac_function
from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML, class_volumes_ml, ventricular_function

#: Table columns of the raw measures (``ventricular_function``'s keys and the ES mass), in table order.
RAW_KEYS = (
    "lv_edv_ml",
    "lv_esv_ml",
    "lv_sv_ml",
    "lv_ef_pct",
    "rv_edv_ml",
    "rv_esv_ml",
    "rv_sv_ml",
    "rv_ef_pct",
    "lv_mass_g",
    "lv_mass_es_g",
)
#: The QC-corrected measures (``qc.store.cardiac_function``'s ``corrected`` values, with the stroke volumes).
CORRECTED_KEYS = tuple(k for k in RAW_KEYS if k != "lv_mass_es_g")


def finite(value: Optional[float]) -> Optional[float]:
    """``None`` for NaN and infinities (JSON and the tables have no NaN), else the value as a float."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def subject_function(
    ed_label: np.ndarray,
    es_label: np.ndarray,
    ed_spacing: Sequence[float],
    es_spacing: Sequence[float],
    ed_report: Dict,
    es_report: Dict,
) -> Dict[str, Optional[float]]:
    """Raw and QC-corrected LV/RV EDV, ESV, SV, EF and LV mass of one subject.

    Args:
        ed_label: the ED label map ``(z, y, x)``.
        es_label: the ES label map.
        ed_spacing: ED voxel spacing ``(z, y, x)`` in mm.
        es_spacing: ES voxel spacing.
        ed_report: the ED frame's QC report (``QualityChecker.check``).
        es_report: the ES frame's QC report.
    """
    raw = ventricular_function(ed_label, es_label, ed_spacing, es_spacing)
    raw["lv_mass_es_g"] = class_volumes_ml(es_label, es_spacing)["lv_myocardium"] * MYOCARDIAL_DENSITY_G_PER_ML
    corrected = dict(cardiac_function(ed_report, es_report)["corrected"])
    for side in ("lv", "rv"):
        corrected[f"{side}_sv_ml"] = round(corrected[f"{side}_edv_ml"] - corrected[f"{side}_esv_ml"], 2)
    out: Dict[str, Optional[float]] = {k: finite(raw[k]) for k in RAW_KEYS}
    out.update({f"{k}_corrected": finite(corrected[k]) for k in CORRECTED_KEYS})
    return out


def frame_volumes(label: np.ndarray, spacing: Sequence[float]) -> Dict[str, float]:
    """LV and RV cavity volume (ml) and LV mass (g) of one frame."""
    ml = class_volumes_ml(label, spacing)
    return {
        "lv_ml": ml["lv_cavity"],
        "rv_ml": ml["rv_cavity"],
        "lv_mass_g": ml["lv_myocardium"] * MYOCARDIAL_DENSITY_G_PER_ML,
    }


def peak_rates(volumes_ml: Sequence[float], frame_interval_s: Optional[float]) -> Dict[str, Optional[float]]:
    """Peak ejection and filling rates of a volume-time curve (central differences over the frames).

    Per frame always; in ml/s when the frame interval is known (image info ``frame_interval_ms``): a NIfTI
    cine's time spacing is often 1 or unset, so it is not trusted.
    """
    v = np.asarray(volumes_ml, dtype=float)
    if len(v) < 3:
        return {"per_ml_per_frame": None, "pfr_ml_per_frame": None, "per_ml_s": None, "pfr_ml_s": None}
    slope = np.gradient(v)
    per, pfr = float(max(0.0, -slope.min())), float(max(0.0, slope.max()))
    seconds = frame_interval_s if frame_interval_s and frame_interval_s > 0 else None
    return {
        "per_ml_per_frame": per,
        "pfr_ml_per_frame": pfr,
        "per_ml_s": per / seconds if seconds else None,
        "pfr_ml_s": pfr / seconds if seconds else None,
    }


def volume_curve(frames: List[int], volumes: List[Dict[str, float]], frame_interval_s: Optional[float]) -> Dict:
    """The volume-time curve of the segmented frames (1-based frame numbers) with LV and RV peak rates."""
    lv = [v["lv_ml"] for v in volumes]
    rv = [v["rv_ml"] for v in volumes]
    return {
        "frames": list(frames),
        "lv_ml": lv,
        "rv_ml": rv,
        "lv_mass_g": [v["lv_mass_g"] for v in volumes],
        "frame_interval_s": frame_interval_s,
        "lv": peak_rates(lv, frame_interval_s),
        "rv": peak_rates(rv, frame_interval_s),
    }


def frame_interval_s(info: Dict) -> Optional[float]:
    """Seconds between cine frames from the image info: ``frame_interval_ms``, else the median step of the DICOM
    trigger times (``trigger_times_ms``, as the DICOM import records them); ``None`` when neither is given."""
    try:
        value = float(info.get("frame_interval_ms"))
    except (TypeError, ValueError):
        times = [t for t in info.get("trigger_times_ms") or [] if isinstance(t, (int, float))]
        value = float(np.median(np.diff(times))) if len(times) >= 2 else 0.0
    return value / 1000.0 if value > 0 else None
