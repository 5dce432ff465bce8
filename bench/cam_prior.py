#!/usr/bin/env python
"""ACDC: segmentation Dice with and without the CAM prior channel, trained on 15%, 25% and 35% of the patients.

The 20 held-out patients (as in ``expert_vs_nonexpert.py``) are the test set; the other 80 are the training pool.
The CAM prior's classifier is the disease-group slice classifier (``cam_training.py``), trained once on every
pool patient's ED and ES images with their ``Info.cfg`` group: image-level groups are cheap, pixel labels are the
scarce part. (No slice-position model is served here, which is the case the fallback exists for.) For each
fraction, both arms train the server's segmentation network from scratch with the same number of epochs on the
same patients (spread over the pool, every group) and the same seed; scored on the held-out expert labels.

    .venv/bin/python bench/cam_prior.py --acdc ../shared/acdc/training --fractions 15,25,35 --epochs 6
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch
from expert_vs_nonexpert import CLASSES, HELD_OUT, score

from cmrassist_server.io.acdc import acdc_items
from cmrassist_server.segmentation.cam_training import training_prior
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation


def spread(pool, n):
    """``n`` patients spread evenly over the pool (ACDC numbers patients by group, so every group is in)."""
    return [pool[i] for i in np.linspace(0, len(pool) - 1, n).round().astype(int)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True)
    ap.add_argument("--fractions", default="15,25,35", help="percent of the 80 pool patients with pixel labels")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per arm (both arms of a fraction alike)")
    ap.add_argument("--classifier-epochs", type=int, default=15)
    ap.add_argument("--classifier-minutes", type=float, default=5.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="cam_prior_")
    os.makedirs(out, exist_ok=True)
    pool = [n for n in range(1, 101) if n not in HELD_OUT]
    setting = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "pool_patients": len(pool),
        "held_out_patients": len(HELD_OUT),
        "epochs_per_arm": args.epochs,
        "seed": args.seed,
        "classifier_epochs": args.classifier_epochs,
    }
    print("setting:", json.dumps(setting), flush=True)

    start = time.time()
    events = []
    prior = training_prior(
        acdc_items(args.acdc, pool),
        position_checkpoint=os.path.join(out, "no_slice_position.pt"),
        group_checkpoint=os.path.join(out, "cam_disease_group.pt"),
        device=args.device,
        seed=args.seed,
        group_epochs=args.classifier_epochs,
        group_minutes=args.classifier_minutes,
        retrain_group=True,
        log=lambda e, **f: events.append(f),
    )
    with open(os.path.join(out, "cam_disease_group.json")) as f:
        classifier = json.load(f)
    setting.update(
        classifier_minutes=round((time.time() - start) / 60, 1),
        classifier_val=classifier.get("val"),
        classifier_epochs_run=classifier.get("epochs"),
        prior=prior.describe(),
    )
    print("disease-group classifier:", json.dumps(setting["classifier_val"]), flush=True)

    results = {}
    for fraction in [int(f) for f in args.fractions.split(",")]:
        patients = spread(pool, max(2, round(len(pool) * fraction / 100)))
        items = acdc_items(args.acdc, patients)
        for cam in (False, True):
            arm = f"{fraction}%/{'cam' if cam else 'plain'}"
            checkpoint = os.path.join(out, f"seg_{fraction}_{'cam' if cam else 'plain'}.pt")
            options = SegmentationTrainOptions(
                max_epochs=args.epochs,
                max_minutes=10_000,
                cam_prior=cam,
                seed=args.seed,
                from_scratch=True,
                device=args.device,
            )
            t0 = time.time()
            trained = train_segmentation(
                items, checkpoint, options, prior=prior if cam else None, log=lambda *a, **k: None
            )
            results[arm] = {
                "patients": len(patients),
                "train_minutes": round((time.time() - t0) / 60, 1),
                "epochs": trained.epochs,
                "val": trained.best_val,
                **score(checkpoint, args.acdc),
            }
            print(arm, json.dumps(results[arm]), flush=True)
    gains = {}
    for fraction in [int(f) for f in args.fractions.split(",")]:
        plain, cam = results[f"{fraction}%/plain"]["dice"], results[f"{fraction}%/cam"]["dice"]
        gains[f"{fraction}%"] = {c: round(cam[c] - plain[c], 4) for c in CLASSES}
    summary = {"results": results, "dice_gain_with_cam": gains, "setting": setting}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    print(
        json.dumps(
            {"dice": {arm: r["dice"] for arm, r in results.items()}, "dice_gain_with_cam": gains, "setting": setting},
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
