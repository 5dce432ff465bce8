#!/usr/bin/env python
"""ACDC label propagation benchmark: the ED expert label warped onto ES by registration, against the ES expert label.

Every patient has both ED and ES labelled, so each is one pair. Reports Dice per class (mean, median), the
same for copying the ED label unchanged (the baseline propagation must beat), and seconds per pair.

    .venv/bin/python bench/propagation.py --acdc ../shared/acdc/training [--patients 1-100] \\
        [--iterations 80,60,40 --shrink 4,2,1 --smoothing 1.0 --margin-mm 25 --histogram-matching off]
"""

import argparse
import json
import os
import platform
import time

import numpy as np
import SimpleITK as sitk

from cmrassist_server.annotations.propagation import PropagationOptions, propagate_frame
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients, parse_patient_range
from CMRAssistCore.measures import mask_dice

CLASSES = {"RV": 1, "MYO": 2, "LV": 3}


def canonical(path: str):
    image = sitk.ReadImage(path)
    orientation = Orientation.of(image)
    return orientation.to_canonical(sitk.GetArrayFromImage(image).astype(np.float32)), orientation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True, help="ACDC training folder")
    ap.add_argument("--patients", default="1-100")
    ap.add_argument("--iterations", default=None, help="demons iterations per level, e.g. 60,40")
    ap.add_argument("--shrink", default=None, help="shrink factor per level, e.g. 2,1")
    ap.add_argument("--smoothing", type=float, default=None)
    ap.add_argument("--margin-mm", type=float, default=None)
    ap.add_argument("--histogram-matching", choices=("on", "off"), default=None, help="override the default (off)")
    ap.add_argument("--out", default=None, help="write per-patient figures to this JSON file")
    args = ap.parse_args()
    defaults = PropagationOptions()
    options = PropagationOptions(
        iterations=tuple(int(v) for v in args.iterations.split(",")) if args.iterations else defaults.iterations,
        shrink=tuple(int(v) for v in args.shrink.split(",")) if args.shrink else defaults.shrink,
        smoothing=args.smoothing if args.smoothing is not None else defaults.smoothing,
        margin_mm=args.margin_mm if args.margin_mm is not None else defaults.margin_mm,
        match_histograms=defaults.match_histograms
        if args.histogram_matching is None
        else args.histogram_matching == "on",
    )
    per_patient, seconds = [], []
    for p in find_patients(args.acdc, parse_patient_range(args.patients)):
        ed_image, orientation = canonical(p.frame_path(p.ed_frame))
        ed_label = canonical(p.frame_path(p.ed_frame, gt=True))[0].astype(np.uint8)
        es_image = canonical(p.frame_path(p.es_frame))[0]
        es_label = canonical(p.frame_path(p.es_frame, gt=True))[0].astype(np.uint8)
        start = time.perf_counter()
        warped = propagate_frame(ed_image, ed_label, es_image, orientation.spacing, options)
        seconds.append(time.perf_counter() - start)
        row = {"patient": p.name, "seconds": round(seconds[-1], 3)}
        for name, value in CLASSES.items():
            row[name] = round(mask_dice(warped == value, es_label == value), 4)
            row[name + "_copy"] = round(mask_dice(ed_label == value, es_label == value), 4)
        per_patient.append(row)
        print(json.dumps(row), flush=True)
    summary = {"pairs": len(per_patient)}
    for name in CLASSES:
        for key in (name, name + "_copy"):
            values = np.array([r[key] for r in per_patient])
            summary[key] = {"mean": round(float(values.mean()), 4), "median": round(float(np.median(values)), 4)}
    summary["seconds_per_pair"] = {
        "mean": round(float(np.mean(seconds)), 3),
        "median": round(float(np.median(seconds)), 3),
        "max": round(float(np.max(seconds)), 3),
    }
    summary["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.__dict__.items()}
    summary["setting"] = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
        "simpleitk": sitk.Version.VersionString(),
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "patients": per_patient}, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
