"""Bench: the cross-validation of the segmentation recipe (issue 25): per fold and over folds (mean, spread) the
per-volume Dice and HD95 by class and phase, the clinical errors (MAE) and their signed bias (prediction minus
expert) for LV, RV and myocardial volumes at ED and ES, EF and LV mass.

Reads what ``cmrassist train-release --folds`` wrote under its state folder (``<state>/<variant>/fold<k>/
scores.json``); with ``--run`` it first trains and scores the folds not done yet (resumable, fold by fold).

Run: ``.venv/bin/python bench/cv.py --state /path/outside/repo [--variant 2.5d] [--run --acdc ../shared/acdc/training]``
"""

import argparse
import glob
import json
import os
from typing import Callable, Dict, List

import numpy as np

CLASSES = ("LV", "MYO", "RV")
CLINICAL = ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "rv_edv_ml", "rv_esv_ml", "myo_ed_ml", "myo_es_ml")
CLINICAL += ("lv_mass_g",)


def fold_figures(scores: Dict) -> Dict[str, float]:
    """One fold's figures: Dice and HD95 per class and phase, clinical MAE and signed bias (pred - expert)."""
    out = {f"dice {k}": v for k, v in scores["dice"].items()}
    out.update({f"hd95 {k}": v for k, v in scores["hd95_mm"].items()})
    for key in CLINICAL:
        errors = [p["pred"][key] - p["ref"][key] for p in scores["per_patient"].values() if key in p["pred"]]
        errors = [e for e in errors if e is not None and np.isfinite(e)]
        if errors:
            out[f"mae {key}"] = float(np.mean(np.abs(errors)))
            out[f"bias {key}"] = float(np.mean(errors))
    return out


def cv_table(folds: List[Dict], figures_of: Callable[[Dict], Dict[str, float]] = fold_figures) -> List[str]:
    """Lines of the table: one column per fold, then the mean and the standard deviation over folds."""
    figures = [figures_of(f) for f in folds]
    keys = [k for k in figures[0] if all(k in f for f in figures)]
    head = f"{'figure':22s}" + "".join(f"{'fold ' + str(f['fold']):>9s}" for f in folds) + f"{'mean':>9s}{'sd':>8s}"
    lines = [head]
    for key in keys:
        values = [f[key] for f in figures]
        cells = "".join(f"{v:9.3f}" for v in values)
        lines.append(f"{key:22s}{cells}{np.mean(values):9.3f}{np.std(values):8.3f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True, help="the run's folder (outside the repository)")
    ap.add_argument("--variant", default="2.5d")
    ap.add_argument("--run", action="store_true", help="train and score the folds not done yet first")
    ap.add_argument("--acdc", default="../shared/acdc/training")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    if args.run:
        from cmrassist_server.core.training import report
        from cmrassist_server.release.folds import FoldsPlan, run_folds

        run_folds(FoldsPlan(args.acdc, args.state, variant=args.variant, epochs=args.epochs), resume=True, log=report)
    paths = sorted(glob.glob(os.path.join(args.state, args.variant, "fold*", "scores.json")))
    if not paths:
        raise SystemExit(f"no scored fold under {os.path.join(args.state, args.variant)} yet")
    folds = []
    for path in paths:
        with open(path) as f:
            folds.append(json.load(f))
    with open(os.path.join(args.state, args.variant, "plan.json")) as f:
        plan = json.load(f)
    patients = sum(len(f["patients"]) for f in folds)
    print(f"# variant {args.variant}; {plan}; {len(folds)} scored fold(s), {patients} held-out patients", end=" ")
    print("(each scored by the fold model that never saw it); per volume, ED and ES alike")
    print("\n".join(cv_table(folds)))


if __name__ == "__main__":
    main()
