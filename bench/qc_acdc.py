#!/usr/bin/env python
"""ACDC QC benchmark: predicted vs true slice and subject Dice on patients outside segmentation and QC training.

The QC model is trained (same code as the server's ``qc`` train task) on the 80 patients the segmentation
benchmark trained on, and tested on its 20 held-out patients (017-020, 037-040, 057-060, 077-080, 097-100).
Test segmentations: the served segmentation model's predictions ("model": realistic quality) and a varied set
("varied": corruptions of the reference and predictions of weak snapshot models). Then the corrupted
mid-slice experiment: LV volume error of the model's segmentation after one mid-ventricular slice is spoiled,
without and with QC correction.

    .venv/bin/python bench/qc_acdc.py --acdc ../shared/acdc/training \\
        --segmentation-model out/segmentation_acdc/segmentation.pt --minutes 40 --out out/qc_acdc
"""

import argparse
import json
import os
import platform
import time

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.corruptions import corrupt
from cmrassist_server.qc.heldout import score_report, summarise
from cmrassist_server.qc.metrics import CHECKED_CLASSES, QC_CLASSES
from cmrassist_server.qc.training import QCTrainOptions, prepare_qc_sets, train_qc
from cmrassist_server.segmentation.heldout import HELD_OUT
from cmrassist_server.segmentation.predictor import SegmentationPredictor

LV = 3


def frames(patients):
    for p in patients:
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            yield p, phase, p.frame_path(frame), p.frame_path(frame, gt=True)


def spoil_mid_slice(seg: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One mid-ventricular slice (middle of the LV extent) made bad in a way seen in practice."""
    out = seg.copy()
    lv_slices = np.flatnonzero((seg == LV).any((1, 2)))
    mid = int(lv_slices[len(lv_slices) // 2])
    s = seg[mid]
    if kind == "dilated":  # LV cavity drawn 8 pixels too wide
        out[mid][ndimage.binary_dilation(s == LV, iterations=8)] = LV
    elif kind == "basal_copy":  # the most basal slice's segmentation pasted onto the mid slice
        out[mid] = seg[lv_slices[0]] if lv_slices[0] != mid else seg[lv_slices[-1]]
    elif kind == "half_deleted":  # half the LV cavity erased
        ys, xs = np.nonzero(s == LV)
        keep = xs < np.median(xs)
        out[mid][ys[~keep], xs[~keep]] = 0
    elif kind == "swapped":  # LV and RV labels swapped on the slice
        out[mid][s == LV], out[mid][s == 1] = 1, LV
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True, help="ACDC training folder")
    ap.add_argument(
        "--segmentation-model",
        required=True,
        help="segmentation checkpoint trained without the held-out patients (bench/segmentation_acdc.py)",
    )
    ap.add_argument("--qc-model", default=None, help="evaluate this QC checkpoint instead of training one")
    ap.add_argument("--minutes", type=float, default=40.0, help="QC network training budget")
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--snapshots", type=int, default=3)
    ap.add_argument("--snapshot-minutes", type=float, default=2.0)
    ap.add_argument("--corruptions", type=int, default=8, help="corrupted copies per training frame")
    ap.add_argument("--test-corruptions", type=int, default=4, help="corrupted copies per test frame")
    ap.add_argument(
        "--train-patients", type=int, default=0, help="use only N training patients (0: all 80; for a quick try)"
    )
    ap.add_argument("--test-patients", type=int, default=0, help="use only N held-out patients (0: all 20)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default="out/qc_acdc")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    patients = find_patients(args.acdc)
    train_p = [p for p in patients if p.number not in HELD_OUT]
    test_p = [p for p in patients if p.number in HELD_OUT]
    if args.train_patients:
        train_p = [train_p[i] for i in np.linspace(0, len(train_p) - 1, args.train_patients).astype(int)]
    if args.test_patients:
        test_p = [test_p[i] for i in np.linspace(0, len(test_p) - 1, args.test_patients).astype(int)]
    setting = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "train_patients": len(train_p),
        "test_patients": len(test_p),
        "args": vars(args),
    }
    print("setting:", json.dumps(setting), flush=True)

    def log(event, **fields):
        print(event, json.dumps(fields, default=str)[:400], flush=True)

    qc_path = args.qc_model or os.path.join(args.out, "qc.pt")
    models = []
    if not args.qc_model:
        items = [
            {"image": img, "label": gt, "subject": p.name, "group": p.info.get("Group", "")}
            for p, _, img, gt in frames(train_p)
        ]
        options = QCTrainOptions(
            max_epochs=args.max_epochs,
            max_minutes=args.minutes,
            snapshots=args.snapshots,
            snapshot_minutes=args.snapshot_minutes,
            corruptions_per_case=args.corruptions,
            device=args.device,
            from_scratch=True,
        )
        t0 = time.time()
        sets = prepare_qc_sets(items, options, segmentation_checkpoint=args.segmentation_model, window=128, log=log)
        build_s = time.time() - t0
        result = train_qc(items, qc_path, options, sets=sets, log=log)
        setting.update(
            qc_set_build_s=round(build_s, 1),
            qc_train_epochs=result.epochs,
            qc_best_val=result.best_val,
            qc_train_sources=sets.train.sources(),
        )
        models = [(name, SegmentationPredictor(device=device, model=m)) for name, m in sets.models if name != "served"]
    served = SegmentationPredictor(args.segmentation_model, device=device)
    checker = QualityChecker(qc_path, device=device, segmentation=served)
    rng = np.random.default_rng(1234)

    rows = {"model": [], "varied": []}
    subjects = {"model": [], "varied": []}
    timings, seg_times, volume_rows = [], [], []
    by_patient = {}
    for p, phase, img_path, gt_path in frames(test_p):
        image = sitk.ReadImage(img_path)
        ref = sitk.GetArrayFromImage(sitk.ReadImage(gt_path)).astype(np.uint8)
        orientation = Orientation.of(image)
        t = time.time()
        prediction = served.segment(image)
        seg_times.append(time.time() - t)
        variants = [("model", "served", prediction)]
        for _ in range(args.test_corruptions):
            seg, kind = corrupt(orientation.to_canonical(ref), rng)
            variants.append(("varied", "corruption:" + kind, orientation.from_canonical(seg)))
        for name, predictor in models:
            variants.append(("varied", name, predictor.segment(image)))
        for group, source, seg in variants:
            t = time.time()
            report = checker.check(image, seg)
            if source == "served":
                by_patient[p.name] = by_patient.get(p.name, 0.0) + (time.time() - t)
            slice_rows, subject = score_report(report, ref, seg, orientation, source)
            rows[group] += slice_rows
            subjects[group].append({**subject, "patient": p.name, "phase": phase})

        # Corrupted mid-slice experiment on the model's segmentation.
        spacing = orientation.spacing
        ref_lv = float((ref == LV).sum()) * np.prod(spacing) / 1000
        base = checker.check(image, prediction)["volumes"]
        volume_rows.append(
            {
                "kind": "none",
                "raw": base["raw"]["lv_cavity_ml"],
                "corrected": base["corrected"]["lv_cavity_ml"],
                "ref": ref_lv,
            }
        )
        for kind in ("dilated", "basal_copy", "half_deleted", "swapped"):
            spoiled = orientation.from_canonical(spoil_mid_slice(orientation.to_canonical(prediction), kind, rng))
            rep = checker.check(image, spoiled)
            volume_rows.append(
                {
                    "kind": kind,
                    "raw": rep["volumes"]["raw"]["lv_cavity_ml"],
                    "corrected": rep["volumes"]["corrected"]["lv_cavity_ml"],
                    "ref": ref_lv,
                }
            )
        print(f"{p.name} {phase}: {len(variants)} segmentations checked", flush=True)
    timings = list(by_patient.values())

    summary = {
        "setting": setting,
        "model": summarise(rows["model"], subjects["model"]),
        "varied": summarise(rows["varied"], subjects["varied"]),
        "all": summarise(rows["model"] + rows["varied"], subjects["model"] + subjects["varied"]),
    }
    mid = {}
    for kind in ("none", "dilated", "basal_copy", "half_deleted", "swapped"):
        sel = [r for r in volume_rows if r["kind"] == kind]
        mid[kind] = {
            "raw_rel_error": float(np.mean([abs(r["raw"] - r["ref"]) / r["ref"] for r in sel])),
            "corrected_rel_error": float(np.mean([abs(r["corrected"] - r["ref"]) / r["ref"] for r in sel])),
            "frames": len(sel),
        }
    summary["mid_slice_lv_volume"] = mid
    summary["qc_seconds_per_subject"] = {
        "median": float(np.median(timings)),
        "p95": float(np.percentile(timings, 95)),
        "note": "QC of ED and ES frames of one patient, segmentation excluded",
    }
    summary["segmentation_seconds_per_frame"] = float(np.median(seg_times))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.out, "subjects.json"), "w") as f:
        json.dump(subjects, f)
    print("\n== QC on held-out ACDC patients ==")
    print("setting:", json.dumps(setting, default=str))
    for group in ("model", "varied", "all"):
        print(f"-- {group} segmentations ({summary[group]['rv_cavity']['subjects']} volumes)")
        print(
            f"{'class':<15}{'sliceMAE':>9}{'(present)':>10}{'subjMAE':>9}{'acc@0.7':>9}{'bad':>6}{'r':>7}{'subj r':>8}"
        )
        for c in CHECKED_CLASSES:
            m = summary[group][QC_CLASSES[c]]
            print(
                f"{QC_CLASSES[c]:<15}{m['slice_mae']:>9.3f}{m['slice_mae_present']:>10.3f}{m['subject_mae']:>9.3f}"
                f"{m['accuracy_at_0.7']:>9.3f}{m['bad_slices']:>6d}{m['pearson_r']:>7.3f}{m['subject_pearson_r']:>8.3f}"
            )
    print("-- corrupted mid-slice: LV relative volume error (mean over frames)")
    for kind, m in mid.items():
        print(
            f"{kind:<14} raw {m['raw_rel_error']:.3f}  corrected {m['corrected_rel_error']:.3f}  ({m['frames']} frames)"
        )
    q = summary["qc_seconds_per_subject"]
    print(
        f"QC time per subject (ED+ES, CPU): median {q['median'] * 1000:.0f} ms, p95 {q['p95'] * 1000:.0f} ms; "
        f"segmentation {summary['segmentation_seconds_per_frame'] * 1000:.0f} ms per frame"
    )


if __name__ == "__main__":
    main()
