#!/usr/bin/env python
"""ACDC: segmentation trained on expert vs simulated non-expert labels, with CE+Dice and MAE+Dice.

Label sets for the training patients: the expert labels, and simulated ``well_trained`` and ``brief`` non-expert
labels made from them (``cmrassist_server.annotations.nonexpert``, one fixed random draw per frame). Each of the six arms
(3 label sets x 2 losses) trains the server's segmentation network from scratch with the same fixed number of
epochs (a budget that does not depend on how busy the CPU is) and validates on its own labels (a non-expert
project has no expert labels to choose models with). Scored on the 20 held-out patients' expert labels: Dice and
HD95 per class, Dice in the basal, mid and apical thirds of each stack, and LV EF, EDV and mass errors.

    .venv/bin/python bench/expert_vs_nonexpert.py --acdc ../shared/acdc/training --train-patients 40 --epochs 8
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import SimpleITK as sitk
import torch

from cmrassist_server.annotations.nonexpert import simulate_nonexpert
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import acdc_items, find_patients
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation
from CMRAssistCore.measures import dice, mask_dice, overlap_table, ventricular_function

HELD_OUT = [g * 20 + k for g in range(5) for k in range(17, 21)]
CLASSES = {"RV": 1, "MYO": 2, "LV": 3}


def simulated_items(items, severity: str, folder: str, seed: int):
    """The items with their labels replaced by a simulated non-expert's (canonical orientation in and out)."""
    os.makedirs(folder, exist_ok=True)
    out = []
    for n, it in enumerate(items):
        label = sitk.ReadImage(it["label"])
        o = Orientation.of(label)
        rng = np.random.default_rng(seed * 100_003 + n)
        array = o.from_canonical(simulate_nonexpert(o.to_canonical(sitk.GetArrayFromImage(label)), severity, rng))
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(label)
        path = os.path.join(folder, f"{it['subject']}_{it['phase']}.nii.gz")
        sitk.WriteImage(image, path, useCompression=True)
        out.append({**it, "label": path})
    return out


def label_dice(items, simulated):
    """Dice of the simulated labels against the expert ones (how wrong the simulated annotator is)."""
    scores = {c: [] for c in CLASSES}
    for a, b in zip(items, simulated):
        ref, sim = (sitk.GetArrayFromImage(sitk.ReadImage(x["label"])) for x in (a, b))
        for name, v in CLASSES.items():
            scores[name].append(dice(sim, ref, v))
    return {c: round(float(np.mean(v)), 4) for c, v in scores.items()}


def regions(ref_canonical: np.ndarray):
    """Slice indices of the basal, mid and apical thirds of the labelled stack (base: the larger LV cavity)."""
    labelled = np.flatnonzero(ref_canonical.reshape(len(ref_canonical), -1).any(1))
    if len(labelled) < 3:
        return {"base": labelled, "mid": labelled, "apex": labelled}
    if (ref_canonical[labelled[0]] == 3).sum() < (ref_canonical[labelled[-1]] == 3).sum():
        labelled = labelled[::-1]
    thirds = np.array_split(labelled, 3)
    return {"base": thirds[0], "mid": thirds[1], "apex": thirds[2]}


def score(checkpoint: str, root: str):
    predictor = SegmentationPredictor(checkpoint, device="cpu")
    dice = {c: [] for c in CLASSES}
    hd95 = {c: [] for c in CLASSES}
    region_dice = {r: {c: [] for c in CLASSES} for r in ("base", "mid", "apex")}
    clinical = []
    for p in find_patients(root, set(HELD_OUT)):
        frames = {}
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            image = sitk.ReadImage(p.frame_path(frame))
            ref = sitk.GetArrayFromImage(sitk.ReadImage(p.frame_path(frame, gt=True)))
            pred = predictor.segment(image)
            spacing = image.GetSpacing()[::-1]
            for name, m in overlap_table(pred, ref, spacing).items():
                dice[name].append(m["dice"])
                hd95[name].append(m["hd95_mm"])
            o = Orientation.of(image)
            ref_c, pred_c = o.to_canonical(ref), o.to_canonical(pred)
            for region, ks in regions(ref_c).items():
                for name, v in CLASSES.items():
                    r, q = ref_c[ks] == v, pred_c[ks] == v
                    if r.sum() + q.sum():
                        region_dice[region][name].append(mask_dice(r, q))
            frames[phase] = (pred, ref, spacing)
        (pe, re_, se), (ps, rs, ss) = frames["ED"], frames["ES"]
        clinical.append((ventricular_function(pe, ps, se, ss), ventricular_function(re_, rs, se, ss)))
    err = lambda k: round(float(np.mean([abs(a[k] - b[k]) for a, b in clinical])), 2)  # noqa: E731
    return {
        "dice": {c: round(float(np.mean(v)), 4) for c, v in dice.items()},
        "hd95_mm": {c: round(float(np.nanmean(v)), 2) for c, v in hd95.items()},
        "dice_by_region": {r: {c: round(float(np.mean(v)), 4) for c, v in d.items()} for r, d in region_dice.items()},
        "lv_ef_abs_error_pct": err("lv_ef_pct"),
        "lv_edv_abs_error_ml": err("lv_edv_ml"),
        "lv_mass_abs_error_g": err("lv_mass_g"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True)
    ap.add_argument(
        "--train-patients", type=int, default=40, help="training patients (spread over the 80, every group)"
    )
    ap.add_argument("--epochs", type=int, default=8, help="epochs per arm (the same for every arm)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="expert_vs_nonexpert_")
    os.makedirs(out, exist_ok=True)
    train = [n for n in range(1, 101) if n not in HELD_OUT]
    train = [train[i] for i in np.linspace(0, len(train) - 1, args.train_patients).round().astype(int)]
    expert = acdc_items(args.acdc, train)
    label_sets = {"expert": expert}
    quality = {}
    for severity in ("well_trained", "brief"):
        label_sets[severity] = simulated_items(expert, severity, os.path.join(out, "labels", severity), args.seed)
        quality[severity] = label_dice(expert, label_sets[severity])
    print("simulated label Dice against the expert:", json.dumps(quality), flush=True)
    results = {}
    for labels, items in label_sets.items():
        for loss in ("ce_dice", "mae_dice"):
            arm = f"{labels}/{loss}"
            checkpoint = os.path.join(out, labels + "_" + loss + ".pt")
            options = SegmentationTrainOptions(
                max_epochs=args.epochs, max_minutes=10_000, loss=loss, seed=args.seed, from_scratch=True
            )
            start = time.time()
            trained = train_segmentation(items, checkpoint, options, log=lambda *a, **k: None)
            results[arm] = {
                "train_minutes": round((time.time() - start) / 60, 1),
                "epochs": trained.epochs,
                "val_on_own_labels": trained.best_val,
                **score(checkpoint, args.acdc),
            }
            print(arm, json.dumps(results[arm]), flush=True)
    gaps = {}
    for ref_loss in ("ce_dice", "mae_dice"):
        base = results[f"expert/{ref_loss}"]["dice"]
        for arm, r in results.items():
            if not arm.startswith("expert"):
                gaps[f"{arm} vs expert/{ref_loss}"] = {c: round(r["dice"][c] - base[c], 4) for c in CLASSES}
    summary = {
        "results": results,
        "dice_gaps": gaps,
        "simulated_label_dice": quality,
        "setting": {
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
            "train_patients": len(train),
            "held_out_patients": len(HELD_OUT),
            "epochs_per_arm": args.epochs,
            "seed": args.seed,
        },
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({"dice_gaps": gaps, "setting": summary["setting"]}, indent=2))


if __name__ == "__main__":
    main()
