"""Bench: the cross-validation of the segmentation recipe (issue 25): per fold and over folds (mean, spread) the
per-volume Dice and HD95 by class and phase, the clinical errors (MAE) and their signed bias (prediction minus
expert) for LV, RV and myocardial volumes at ED and ES, EF and LV mass.

Reads what ``cmrassist train-release --folds`` wrote under its state folder (``<state>/<variant>/fold<k>/
scores.json``); with ``--run`` it first trains and scores the folds not done yet (resumable, fold by fold).

Run: ``.venv/bin/python bench/cv.py --state /path/outside/repo [--variant 2.5d] [--run --acdc ../shared/acdc/training]``
"""

import argparse
import json
import os

from cmrassist_server.release.cv_report import cv_table, scored_folds


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
    folds = scored_folds(args.state, args.variant)
    if not folds:
        raise SystemExit(f"no scored fold under {os.path.join(args.state, args.variant)} yet")
    with open(os.path.join(args.state, args.variant, "plan.json")) as f:
        plan = json.load(f)
    patients = sum(len(f["patients"]) for f in folds)
    print(f"# variant {args.variant}; {plan}; {len(folds)} scored fold(s), {patients} held-out patients", end=" ")
    print("(each scored by the fold model that never saw it); per volume, ED and ES alike")
    print("\n".join(cv_table(folds)))


if __name__ == "__main__":
    main()
