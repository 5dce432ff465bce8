#!/usr/bin/env python
"""ACDC segmentation benchmark: train through the server's ``segmentation`` train task, score held-out patients.

Held out: the last 4 patients of each disease group (017-020, 037-040, ...: 20 patients, every group in both
parts). Dice and HD95 are per volume (each ED or ES frame scored alone) then averaged, as challenges report.

    .venv/bin/python bench/segmentation_acdc.py --acdc ../shared/acdc/training --minutes 60 --out out/seg
    .venv/bin/python bench/segmentation_acdc.py --acdc ../shared/acdc/training --model models/segmentation.pt
"""

import argparse
import csv
import json
import os
import platform
import tempfile
import time

import numpy as np
import SimpleITK as sitk
import torch
from monailabel.datastore.local import LocalDatastore

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients, import_acdc
from cmrassist_server.io.studies import training_items
from cmrassist_server.segmentation.heldout import HELD_OUT, evaluate_acdc, format_summary
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation
from CMRAssistCore.measures import overlap_table, ventricular_function


def held_out_numbers():
    return [g * 20 + k for g in range(5) for k in range(17, 21)]


def score_model(args) -> None:
    """The held-out figures of a given checkpoint (the shipped model's card uses the same function)."""
    setting = {
        "model": args.model,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device or "cpu (default)",
    }
    print("setting:", json.dumps(setting), flush=True)
    result = evaluate_acdc(SegmentationPredictor(args.model, device=args.device), args.acdc, HELD_OUT)
    print(format_summary(result))
    seconds = result["seconds_per_volume"]
    print(
        f"inference per volume: median {np.median(seconds) * 1000:.0f} ms, p95 {np.percentile(seconds, 95) * 1000:.0f} ms"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True, help="ACDC training folder")
    ap.add_argument("--minutes", type=float, default=60.0, help="training budget")
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--network", default="unet")
    ap.add_argument("--val-split", type=float, default=0.2, help="share of training patients used for validation")
    ap.add_argument("--device", default=None)
    ap.add_argument("--train-patients", type=int, default=0, help="use only the first N training patients (0: all 80)")
    ap.add_argument("--out", default="out/segmentation_acdc")
    ap.add_argument("--model", default=None, help="score this checkpoint (e.g. models/segmentation.pt), no training")
    args = ap.parse_args(argv)
    if args.model:
        return score_model(args)
    os.makedirs(args.out, exist_ok=True)
    test = held_out_numbers()
    train = [n for n in range(1, 101) if n not in test]
    if args.train_patients:
        train = [train[i] for i in np.linspace(0, len(train) - 1, args.train_patients).astype(int)]
    studies = tempfile.mkdtemp(prefix="acdc-studies-")
    t0 = time.time()
    import_acdc(args.acdc, studies, patients=",".join(map(str, train)), with_cine=False)
    print(f"imported {len(train)} training patients in {time.time() - t0:.0f} s", flush=True)
    checkpoint = os.path.join(args.out, "segmentation.pt")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    # What the server's train task does with these params (final labels of the imported patients).
    options = SegmentationTrainOptions.from_request(
        {
            "max_epochs": args.max_epochs,
            "max_minutes": args.minutes,
            "network": args.network,
            "val_split": args.val_split,
            "device": args.device,
        }
    )
    t0 = time.time()
    items = training_items(LocalDatastore(studies, extensions=("*.nii.gz",)))
    summary = train_segmentation(items, checkpoint, options).summary()
    train_s = time.time() - t0
    history = json.load(open(os.path.splitext(checkpoint)[0] + ".history.json"))

    predictor = SegmentationPredictor(checkpoint, device=args.device)
    rows, per_patient = [], {}
    for p in find_patients(args.acdc, set(test)):
        frames = {}
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            image = sitk.ReadImage(p.frame_path(frame))
            ref = sitk.GetArrayFromImage(sitk.ReadImage(p.frame_path(frame, gt=True)))
            t = time.time()
            pred = predictor.segment(image)
            dt = time.time() - t
            spacing = Orientation.of(image).spacing
            zyx_spacing = image.GetSpacing()[::-1]
            table = overlap_table(pred, ref, zyx_spacing)
            frames[phase] = (pred, ref, zyx_spacing)
            for cls, m in table.items():
                rows.append(
                    {
                        "patient": p.name,
                        "group": p.info["Group"],
                        "phase": phase,
                        "class": cls,
                        "dice": m["dice"],
                        "hd95_mm": m["hd95_mm"],
                        "seconds": dt,
                        "slice_mm": spacing[0],
                    }
                )
        (pe, re_, sp_e), (ps, rs, sp_s) = frames["ED"], frames["ES"]
        per_patient[p.name] = {
            "pred": ventricular_function(pe, ps, sp_e, sp_s),
            "ref": ventricular_function(re_, rs, sp_e, sp_s),
        }

    with open(os.path.join(args.out, "per_volume.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\n=== ACDC segmentation benchmark ({len(test)} held-out patients, {len(rows) // 3} volumes) ===")
    print(f"{'class':6s} {'phase':6s} {'Dice':>7s} {'HD95 mm':>8s}")
    results = {}
    for cls in ("LV", "MYO", "RV"):
        for phase in ("ED", "ES", "all"):
            sel = [r for r in rows if r["class"] == cls and (phase == "all" or r["phase"] == phase)]
            d = float(np.mean([r["dice"] for r in sel]))
            h = float(np.nanmean([r["hd95_mm"] for r in sel]))
            results[f"{cls}_{phase}"] = {"dice": d, "hd95_mm": h}
            print(f"{cls:6s} {phase:6s} {d:7.3f} {h:8.2f}")
    err = lambda k: float(np.mean([abs(v["pred"][k] - v["ref"][k]) for v in per_patient.values()]))  # noqa: E731
    clinical = {k: err(k) for k in ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "rv_edv_ml", "lv_mass_g")}
    print("MAE: " + ", ".join(f"{k} {v:.2f}" for k, v in clinical.items()))
    vals = [h["val"]["mean"] for h in history]
    tail = vals[-max(3, len(vals) // 5) :]
    rising = len(vals) >= 4 and np.mean(tail) > np.mean(vals[-2 * len(tail) : -len(tail)]) + 0.002
    print(
        f"training: {len(history)} epochs in {train_s / 60:.1f} min, best val mean Dice {max(vals):.3f}; "
        f"val curve over the last epochs {'still rising' if rising else 'flat'}: {[round(v, 3) for v in vals[-8:]]}"
    )
    seconds = [r["seconds"] for r in rows[::3]]
    setting = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": predictor.device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "minutes": args.minutes,
        "network": args.network,
        "train_patients": len(train),
        "val_split": args.val_split,
        "median_infer_s_per_volume": float(np.median(seconds)),
    }
    print("setting: " + json.dumps(setting))
    json.dump(
        {"results": results, "clinical_mae": clinical, "history": history, "setting": setting, "summary": summary},
        open(os.path.join(args.out, "summary.json"), "w"),
        indent=1,
    )


if __name__ == "__main__":
    main()
