"""Segmentation scored on held-out ACDC patients: per-volume Dice and HD95 by class and phase, clinical errors.

Held out by default: the last 4 patients of each disease group (017-020, 037-040, ...: 20 patients, every group
represented). Each ED or ES frame is scored alone, then averaged, as the ACDC challenge reports.
"""

import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from cmrassist_server.io.acdc import find_patients
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from CMRAssistCore.measures import class_volumes_ml, overlap_table, ventricular_function

#: The 20 ACDC patients no shipped model trains on.
HELD_OUT = tuple(g * 20 + k for g in range(5) for k in range(17, 21))
CLINICAL = ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "rv_edv_ml", "rv_esv_ml", "lv_mass_g")


def training_patients(held_out: Sequence[int] = HELD_OUT) -> List[int]:
    return [n for n in range(1, 101) if n not in set(held_out)]


def evaluate_acdc(
    predictor: SegmentationPredictor,
    acdc: str,
    patients: Sequence[int] = HELD_OUT,
    *,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict:
    """Segment every ED and ES frame of ``patients`` and score it against the expert label.

    Returns:
        ``{"rows": per volume and class, "dice": {"LV_ED": ..., "LV_all": ...}, "hd95_mm": {...},
        "clinical_mae": {...}, "per_patient": {...}, "seconds_per_volume": [...]}``.
    """
    rows, per_patient, seconds = [], {}, []
    found = find_patients(acdc, set(patients))
    for n, p in enumerate(found, start=1):
        frames = {}
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            image = sitk.ReadImage(p.frame_path(frame))
            ref = sitk.GetArrayFromImage(sitk.ReadImage(p.frame_path(frame, gt=True)))
            start = time.time()
            pred = predictor.segment(image)
            seconds.append(time.time() - start)
            spacing = image.GetSpacing()[::-1]
            frames[phase] = (pred, ref, spacing)
            for cls, m in overlap_table(pred, ref, spacing).items():
                rows.append(
                    {
                        "patient": p.name,
                        "group": p.info.get("Group", ""),
                        "phase": phase,
                        "class": cls,
                        "dice": m["dice"],
                        "hd95_mm": m["hd95_mm"],
                    }
                )
        (pe, re_, se), (ps, rs, ss) = frames["ED"], frames["ES"]
        per_patient[p.name] = {
            "group": p.info.get("Group", ""),
            "pred": _function(pe, ps, se, ss),
            "ref": _function(re_, rs, se, ss),
        }
        if progress:
            progress(n, len(found))
    return {**summarise(rows, per_patient), "rows": rows, "per_patient": per_patient, "seconds_per_volume": seconds}


def _function(ed: np.ndarray, es: np.ndarray, ed_spacing, es_spacing) -> Dict[str, float]:
    """Ventricular function plus the myocardial volume at ED and ES (where a mass error comes from)."""
    phases = (("ed", ed, ed_spacing), ("es", es, es_spacing))
    myo = {f"myo_{phase}_ml": class_volumes_ml(label, spacing)["lv_myocardium"] for phase, label, spacing in phases}
    return {**ventricular_function(ed, es, ed_spacing, es_spacing), **myo}


def summarise(rows: List[Dict], per_patient: Dict[str, Dict]) -> Dict:
    """Mean Dice and HD95 per class and phase (``all`` = ED and ES volumes together), clinical MAE."""
    dice, hd95 = {}, {}
    for cls in ("LV", "MYO", "RV"):
        for phase in ("ED", "ES", "all"):
            sel = [r for r in rows if r["class"] == cls and phase in ("all", r["phase"])]
            dice[f"{cls}_{phase}"] = float(np.mean([r["dice"] for r in sel]))
            hd95[f"{cls}_{phase}"] = float(np.nanmean([r["hd95_mm"] for r in sel]))
    clinical = {
        k: float(np.mean([abs(v["pred"][k] - v["ref"][k]) for v in per_patient.values()]))
        for k in CLINICAL
        if all(k in v["pred"] for v in per_patient.values())
    }
    return {"dice": dice, "hd95_mm": hd95, "clinical_mae": clinical, "volumes": len(rows) // 3}


def format_summary(result: Dict) -> str:
    """The table a benchmark or a model card prints."""
    lines = [f"{'class':6s} {'phase':6s} {'Dice':>7s} {'HD95 mm':>8s}"]
    for key, d in result["dice"].items():
        cls, phase = key.split("_")
        lines.append(f"{cls:6s} {phase:6s} {d:7.3f} {result['hd95_mm'][key]:8.2f}")
    lines.append("MAE: " + ", ".join(f"{k} {v:.2f}" for k, v in result["clinical_mae"].items()))
    return "\n".join(lines)
