"""``cmrassist evaluate``: compare predicted label maps with reference ones, per class and clinically."""

import csv
import glob
import os
import re
from typing import Dict, List

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import read_image
from CMRAssistCore.measures import overlap_table, ventricular_function

_PHASE = re.compile(r"^(?P<subject>.+?)[_-](?P<phase>ed|es)(?:[_-]gt)?$", re.IGNORECASE)
_ACDC = re.compile(r"^(?P<subject>patient\d{3})_frame\d{2}(?:_gt)?$")


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".nii.gz", ".nii", ".nrrd"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _label_files(folder: str) -> Dict[str, str]:
    if not os.path.isdir(folder):
        raise CMRAssistError(f"{folder} is not a folder")
    files = [f for ext in ("*.nii.gz", "*.nii", "*.nrrd") for f in glob.glob(os.path.join(folder, ext))]
    return {re.sub(r"_gt$", "", _stem(f)): f for f in files}


def evaluate_folders(pred_dir: str, ref_dir: str, csv_path: str) -> Dict:
    """Score every prediction that has a reference of the same name; write a per-volume CSV.

    ED/ES pairs (names ending ``_ed``/``_es``) also give EF, EDV and mass errors.
    """
    preds, refs = _label_files(pred_dir), _label_files(ref_dir)
    common = sorted(set(preds) & set(refs))
    if not common:
        raise CMRAssistError(f"no file in {pred_dir} has a same-named reference in {ref_dir}")
    rows: List[Dict] = []
    volumes: Dict[str, Dict[str, tuple]] = {}
    for key in common:
        p_img, r_img = read_image(preds[key]), read_image(refs[key])
        pred, ref = sitk.GetArrayFromImage(p_img), sitk.GetArrayFromImage(r_img)
        if pred.shape != ref.shape:
            raise CMRAssistError(f"{key}: prediction shape {pred.shape} differs from reference {ref.shape}")
        spacing = r_img.GetSpacing()[::-1]
        for cls, m in overlap_table(pred, ref, spacing).items():
            rows.append({"volume": key, "class": cls, "dice": round(m["dice"], 4), "hd95_mm": round(m["hd95_mm"], 2)})
        m = _PHASE.match(key)
        if m:
            volumes.setdefault(m.group("subject"), {})[m.group("phase").upper()] = (pred, ref, spacing)
    clinical = []
    for subject, phases in sorted(volumes.items()):
        if "ED" in phases and "ES" in phases:
            (pe, re_, se), (ps, rs, ss) = phases["ED"], phases["ES"]
            fp, fr = ventricular_function(pe, ps, se, ss), ventricular_function(re_, rs, se, ss)
            clinical.append({k: fp[k] - fr[k] for k in fp} | {"subject": subject})
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["volume", "class", "dice", "hd95_mm"])
        w.writeheader()
        w.writerows(rows)
    summary = {}
    for cls in ("LV", "MYO", "RV"):
        sel = [r for r in rows if r["class"] == cls]
        summary[cls] = {
            "dice": float(np.mean([r["dice"] for r in sel])),
            "hd95_mm": float(np.nanmean([r["hd95_mm"] for r in sel]))
            if any(np.isfinite(r["hd95_mm"]) for r in sel)
            else float("nan"),
            "n": len(sel),
        }
    errors = {}
    if clinical:
        for k in ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "rv_edv_ml", "lv_mass_g"):
            errors[k] = float(np.mean([abs(c[k]) for c in clinical]))
    return {"volumes": len(common), "classes": summary, "clinical_mae": errors, "pairs": len(clinical), "csv": csv_path}


def format_report(result: Dict) -> str:
    lines = [f"{result['volumes']} volumes", f"{'class':6s} {'Dice':>7s} {'HD95 mm':>8s}"]
    for cls, m in result["classes"].items():
        lines.append(f"{cls:6s} {m['dice']:7.3f} {m['hd95_mm']:8.2f}")
    if result["clinical_mae"]:
        lines.append(f"ED/ES pairs: {result['pairs']}; mean absolute errors:")
        units = {"lv_ef_pct": "%", "rv_ef_pct": "%", "lv_edv_ml": "ml", "rv_edv_ml": "ml", "lv_mass_g": "g"}
        lines += [f"  {k:10s} {v:7.2f} {units[k]}" for k, v in result["clinical_mae"].items()]
    lines.append(f"per-volume CSV: {result['csv']}")
    return "\n".join(lines)
