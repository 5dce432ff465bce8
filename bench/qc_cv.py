"""Bench: the QC trained on out-of-fold predictions, cross-validated with the segmentation folds (issue 25, item
4): per QC fold and over folds (mean, spread), on the fold's held-out patients, (a) the fold models' own labels
(checked as batch work checks them: the fold ensemble with flips) - slice and subject Dice MAE, good/bad accuracy
at 0.7 - and (b) the published protocol: varied labels, slice Dice MAE with every Dice bin weighted evenly.

Reads ``<state>/qc-<variants>/fold<k>/scores.json`` (``release/qc_folds.py``); with ``--run`` it first trains
and scores the QC folds not done yet (each needs every segmentation fold of its variants finished).

Run: ``.venv/bin/python bench/qc_cv.py --state /path/outside/repo [--variants 2.5d] [--run --acdc ../shared/acdc/training]``
"""

import argparse
import glob
import json
import os
from typing import Dict

from cmrassist_server.release.cv_report import cv_table

CLASSES = ("lv_cavity", "lv_myocardium", "rv_cavity")


def qc_fold_figures(scores: Dict) -> Dict[str, float]:
    """One QC fold's figures: (a) per class and mean, (b) the protocol's slice MAE, the QC time per subject."""
    out = {}
    for key in ("slice_mae", "subject_mae", "accuracy_at_0.7"):
        for name in CLASSES:
            out[f"a {key} {name}"] = scores["model"][name][key]
        out[f"a {key} mean"] = scores["model"]["mean"][key]
    out["b protocol slice_mae"] = scores["protocol"]["slice_mae"]
    out["qc s per subject"] = scores["qc_seconds_per_subject"]["median"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True, help="the segmentation CV's folder (outside the repository)")
    ap.add_argument("--variants", default="2.5d", help="comma-separated CV variants forming each patient's view")
    ap.add_argument("--run", action="store_true", help="train and score the QC folds not done yet first")
    ap.add_argument("--acdc", default="../shared/acdc/training")
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    variants = tuple(args.variants.split(","))
    if args.run:
        from cmrassist_server.core.training import report
        from cmrassist_server.release.qc_folds import QCFoldsPlan, run_qc_fold

        plan = QCFoldsPlan(args.acdc, args.state, variants=variants, epochs=args.epochs)
        for fold in range(plan.folds):
            run_qc_fold(plan, fold, resume=True, log=report)
    folder = os.path.join(args.state, "qc-" + "+".join(variants))
    folds = []
    for path in sorted(glob.glob(os.path.join(folder, "fold*", "scores.json"))):
        with open(path) as f:
            folds.append(json.load(f))
    if not folds:
        raise SystemExit(f"no scored QC fold under {folder} yet")
    patients = sum(len(f["patients"]) for f in folds)
    print(f"# QC on out-of-fold views of {'+'.join(variants)}; {len(folds)} scored fold(s), {patients} patients")
    print("\n".join(cv_table(folds, qc_fold_figures)))


if __name__ == "__main__":
    main()
