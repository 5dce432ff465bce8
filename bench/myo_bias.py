"""Bench: where the myocardial volume error (hence the LV mass error) comes from (issue 25). For each held-out
patient and phase, the predicted minus the expert myocardial volume (ml) is split by where the voxels lie:

- by slice: slices the expert left unlabelled (beyond the base or the apex), then the basal, mid and apical thirds
  of the expert's labelled slices;
- by what the other side called them: myocardium the model added where the expert drew LV cavity (papillary
  muscles and trabeculae), background (epicardial border outward) or RV, minus myocardium the expert drew where the
  model put LV cavity (endocardial border inward), background or RV.

Each term is a mean over patients in ml (ED and ES apart); the terms add up to the volume bias.

Run: ``.venv/bin/python bench/myo_bias.py --acdc ../shared/acdc/training [--model models/segmentation.pt]
[--patients 17-20,37-40,...]`` (default: the shipped model on its 20 held-out patients).
"""

import argparse
from collections import defaultdict
from typing import Dict

import numpy as np
import SimpleITK as sitk

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients, parse_patient_range
from cmrassist_server.segmentation.heldout import HELD_OUT
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from CMRAssistCore.labels import BACKGROUND, LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY

OTHER = {"lv cavity": LV_CAVITY, "background": BACKGROUND, "rv": RV_CAVITY}


def regions(ref: np.ndarray) -> Dict[str, np.ndarray]:
    """Slice indices (canonical, base first) of: unlabelled slices, and the labelled range's thirds."""
    labelled = np.flatnonzero(ref.reshape(len(ref), -1).any(1))
    if len(labelled) and (ref[labelled[0]] == LV_CAVITY).sum() < (ref[labelled[-1]] == LV_CAVITY).sum():
        labelled = labelled[::-1]  # the base has the larger LV cavity
    thirds = np.array_split(labelled, 3) if len(labelled) >= 3 else [labelled] * 3
    outside = np.setdiff1d(np.arange(len(ref)), labelled)
    return {"unlabelled slices": outside, "base": thirds[0], "mid": thirds[1], "apex": thirds[2]}


def terms(pred: np.ndarray, ref: np.ndarray, voxel_ml: float) -> Dict[str, float]:
    """Signed myocardial volume terms (ml) of one frame, by region and by what the other side called the voxels."""
    out: Dict[str, float] = defaultdict(float)
    for region, slices in regions(ref).items():
        p, r = pred[slices], ref[slices]
        out[f"region {region}"] += voxel_ml * float((p == LV_MYOCARDIUM).sum() - (r == LV_MYOCARDIUM).sum())
    for name, value in OTHER.items():
        out[f"added over expert {name}"] += voxel_ml * float(((pred == LV_MYOCARDIUM) & (ref == value)).sum())
        out[f"missed as model {name}"] -= voxel_ml * float(((ref == LV_MYOCARDIUM) & (pred == value)).sum())
    out["volume bias"] = voxel_ml * float((pred == LV_MYOCARDIUM).sum() - (ref == LV_MYOCARDIUM).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--acdc", default="../shared/acdc/training")
    ap.add_argument("--model", default="models/segmentation.pt")
    ap.add_argument("--patients", default="", help="e.g. 17-20,37-40 (default: the 20 held-out patients)")
    args = ap.parse_args()
    chosen = parse_patient_range(args.patients) if args.patients else set(HELD_OUT)
    predictor = SegmentationPredictor(args.model, device="cpu")
    rows = {"ED": defaultdict(list), "ES": defaultdict(list)}
    for p in find_patients(args.acdc, chosen):
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            image = sitk.ReadImage(p.frame_path(frame))
            ref = sitk.GetArrayFromImage(sitk.ReadImage(p.frame_path(frame, gt=True)))
            o = Orientation.of(image)
            pred_c, ref_c = o.to_canonical(predictor.segment(image)), o.to_canonical(ref)
            for key, value in terms(pred_c, ref_c, float(np.prod(image.GetSpacing())) / 1000.0).items():
                rows[phase][key].append(value)
    print(f"# {args.model} on {len(chosen)} patients; myocardial volume, prediction minus expert, mean ml (sd)")
    keys = sorted(rows["ED"], key=lambda k: (k != "volume bias", k))
    print(f"{'term':34s} {'ED':>15s} {'ES':>15s}")
    for key in keys:
        cells = [f"{np.mean(rows[ph][key]):7.2f} ({np.std(rows[ph][key]):5.2f})" for ph in ("ED", "ES")]
        print(f"{key:34s} {cells[0]:>15s} {cells[1]:>15s}")
    print(f"LV mass bias at ED: {1.05 * np.mean(rows['ED']['volume bias']):.1f} g")


if __name__ == "__main__":
    main()
