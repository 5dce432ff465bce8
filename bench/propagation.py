#!/usr/bin/env python
"""ACDC label propagation benchmark: the ED expert label warped onto ES by registration, against the ES expert label.

Every patient has both ED and ES labelled, so each is one pair. Reports Dice per class (mean, median), the
same for copying the ED label unchanged (the baseline propagation must beat), and seconds per pair.

With ``--cv-state`` each pair is also checked through-plane (``annotations/propagation.through_plane_check``) by
the segmentation model that never saw the patient: the fold model of a 5-fold cross-validation that held it out,
as a site's served model has never seen the site's patients. Its labels of ES are timed into the pair's seconds.

    .venv/bin/python bench/propagation.py --acdc ../shared/acdc/training [--patients 1-100] \\
        [--iterations 80,60,40 --shrink 4,2,1 --smoothing 1.0 --margin-mm 25 --histogram-matching off] \\
        [--cv-state DIR --variant 2.5d --through-plane-keep 0.5]
"""

import argparse
import json
import os
import platform
import time
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from cmrassist_server.annotations.propagation import PropagationOptions, propagate_frame, through_plane_check
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients, parse_patient_range
from cmrassist_server.release.cv_report import scored_folds
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from CMRAssistCore.measures import mask_dice

CLASSES = {"RV": 1, "MYO": 2, "LV": 3}


def canonical(path: str):
    image = sitk.ReadImage(path)
    orientation = Orientation.of(image)
    return orientation.to_canonical(sitk.GetArrayFromImage(image).astype(np.float32)), orientation


def _options(args) -> PropagationOptions:
    defaults = PropagationOptions()
    return PropagationOptions(
        iterations=tuple(int(v) for v in args.iterations.split(",")) if args.iterations else defaults.iterations,
        shrink=tuple(int(v) for v in args.shrink.split(",")) if args.shrink else defaults.shrink,
        smoothing=args.smoothing if args.smoothing is not None else defaults.smoothing,
        margin_mm=args.margin_mm if args.margin_mm is not None else defaults.margin_mm,
        match_histograms=defaults.match_histograms
        if args.histogram_matching is None
        else args.histogram_matching == "on",
        through_plane_keep=args.through_plane_keep,
    )


def out_of_fold_models(state: str, variant: str) -> Dict[int, SegmentationPredictor]:
    """Each patient number's fold model: the one of the 5-fold run in ``state`` that held the patient out."""
    models = {}
    for scores in scored_folds(state, variant):
        checkpoint = os.path.join(state, variant, f"fold{scores['fold']}", "segmentation.pt")
        models.update(dict.fromkeys(scores["patients"], SegmentationPredictor(checkpoint, device="cpu")))
    return models


def pair(p, options: PropagationOptions, model: Optional[SegmentationPredictor]) -> Dict:
    """One patient's ED -> ES figures: propagated, copied, and checked through-plane by ``model`` when given."""
    ed_image, orientation = canonical(p.frame_path(p.ed_frame))
    ed_label = canonical(p.frame_path(p.ed_frame, gt=True))[0].astype(np.uint8)
    es_image = canonical(p.frame_path(p.es_frame))[0]
    es_label = canonical(p.frame_path(p.es_frame, gt=True))[0].astype(np.uint8)
    start = time.perf_counter()
    warped = propagate_frame(ed_image, ed_label, es_image, orientation.spacing, options)
    row = {"patient": p.name, "seconds": round(time.perf_counter() - start, 3)}
    results = {"": warped, "_copy": ed_label}
    if model is not None:
        start = time.perf_counter()
        labels = orientation.to_canonical(model.segment(sitk.ReadImage(p.frame_path(p.es_frame))))
        results["_checked"] = through_plane_check(
            warped, labels, options.through_plane_keep, options.through_plane_trust
        )
        row["seconds_checked"] = round(row["seconds"] + time.perf_counter() - start, 3)
    for name, value in CLASSES.items():
        for suffix, result in results.items():
            row[name + suffix] = round(mask_dice(result == value, es_label == value), 4)
    return row


def summarise(per_patient: List[Dict], options: PropagationOptions) -> Dict:
    summary = {"pairs": len(per_patient)}
    for key in [k for k in per_patient[0] if k != "patient"]:
        values = np.array([r[key] for r in per_patient])
        summary[key] = {"mean": round(float(values.mean()), 4), "median": round(float(np.median(values)), 4)}
        if key.startswith("seconds"):
            summary[key]["max"] = round(float(values.max()), 3)
    summary["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.__dict__.items()}
    summary["setting"] = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
        "simpleitk": sitk.Version.VersionString(),
    }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True, help="ACDC training folder")
    ap.add_argument("--patients", default="1-100")
    ap.add_argument("--iterations", default=None, help="demons iterations per level, e.g. 60,40")
    ap.add_argument("--shrink", default=None, help="shrink factor per level, e.g. 2,1")
    ap.add_argument("--smoothing", type=float, default=None)
    ap.add_argument("--margin-mm", type=float, default=None)
    ap.add_argument("--histogram-matching", choices=("on", "off"), default=None, help="override the default (off)")
    ap.add_argument("--cv-state", default=None, help="a 5-fold CV's state: check through-plane with its fold models")
    ap.add_argument("--variant", default="2.5d", help="the CV's recipe variant")
    ap.add_argument("--through-plane-keep", type=float, default=PropagationOptions().through_plane_keep)
    ap.add_argument("--out", default=None, help="write per-patient figures to this JSON file")
    args = ap.parse_args()
    options = _options(args)
    models = out_of_fold_models(args.cv_state, args.variant) if args.cv_state else {}
    per_patient = []
    for p in find_patients(args.acdc, parse_patient_range(args.patients)):
        per_patient.append(pair(p, options, models.get(int(p.name[-3:])) if models else None))
        print(json.dumps(per_patient[-1]), flush=True)
    summary = summarise(per_patient, options)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "patients": per_patient}, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
