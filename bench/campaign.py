#!/usr/bin/env python
"""What an annotation campaign costs (issue 24): the whole loop, strategy by strategy, on the real server over HTTP.

A site starts from a model trained on a small expert-labelled seed; the campaign labels the cohort in rounds by
one strategy (``campaign_sim.STRATEGIES``) until its expert budget is spent, retraining through
``POST /train/segmentation`` after every round (the same epochs for every strategy) and re-segmenting what is
not yet labelled. ACDC's expert labels stand for the expert; the project's simulated non-expert for the
non-expert; one-click for the model. Per round: the cohort's labels (labelled, else the current model's) against
the expert's, the retrained model on the fold's held-out patients, and the cells (one class on one slice) each
annotator kind touched.

    .venv/bin/python bench/campaign.py --acdc ../shared/acdc/training --fold 0 --seed-subjects 10 --cohort 40 \\
        --round-subjects 8 --epochs 4 --seed-epochs 30 --strategies a,b,c,d,e --out out/campaign

Without ``--acdc``, phantoms. The figures reproduce from the command (fixed seeds; epochs, not minutes).
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from typing import Dict, List

import numpy as np
from campaign_setup import Cohort, Subject, acdc_cohort, phantom_cohort, seed_site
from campaign_sim import STRATEGIES, Campaign, Site, cells

from CMRAssistCore.measures import dice, ventricular_function

CLASS_NAMES = {"RV": 1, "MYO": 2, "LV": 3}


def scores(subjects: List[Subject], labels: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Dice per class (mean over frames) and the clinical errors (mean absolute over subjects) of ``labels``
    (per frame id, canonical) against the expert's."""
    dices = {name: [] for name in CLASS_NAMES}
    errors = {"lvef": [], "rvef": [], "lv_mass": [], "lvedv": []}
    for s in subjects:
        for f in s.frames:
            for name, value in CLASS_NAMES.items():
                dices[name].append(dice(labels[f.image_id], f.truth, value))
        ed, es = s.frames
        ours = ventricular_function(labels[ed.image_id], labels[es.image_id], ed.spacing, es.spacing)
        truth = ventricular_function(ed.truth, es.truth, ed.spacing, es.spacing)
        for key, measure in (
            ("lvef", "lv_ef_pct"),
            ("rvef", "rv_ef_pct"),
            ("lv_mass", "lv_mass_g"),
            ("lvedv", "lv_edv_ml"),
        ):
            errors[key].append(abs(ours[measure] - truth[measure]))
    out = {f"dice_{k.lower()}": round(float(np.mean(v)), 4) for k, v in dices.items()}
    out.update({f"{k}_mae": round(float(np.nanmean(v)), 2) for k, v in errors.items()})
    return out


def evaluate(campaign: Campaign, cohort: Cohort) -> Dict:
    """The cohort's labels (labelled, else the current model's) and the model on the held-out subjects."""
    site = campaign.site
    labels = dict(campaign.labels)
    for s in cohort.cohort + cohort.held_out:
        for f in s.frames:
            if f.image_id not in labels:
                labels[f.image_id] = site.segment(f)
    return {"cohort": scores(cohort.cohort, labels), "held_out": scores(cohort.held_out, labels)}


def run_strategy(strategy: str, base: Dict[str, str], cohort: Cohort, args, work: str) -> List[Dict]:
    """One strategy from the seed site to its spent budget; one row per round (round 0: the seed model)."""
    root = os.path.join(work, strategy)
    shutil.rmtree(root, ignore_errors=True)  # a strategy always starts from the seed site
    studies, models = os.path.join(root, "studies"), os.path.join(root, "models")
    shutil.copytree(base["studies"], studies)
    shutil.copytree(base["models"], models)
    site = Site(studies, models, os.path.join(root, "server.log"))
    campaign = Campaign(strategy, site, args.budget, seed=args.seed)
    rows, pending = [], list(cohort.cohort)
    try:
        rows.append(_row(campaign, cohort, 0, 0.0))
        for r in range(1, args.rounds + 1):
            if campaign.spent or not pending:
                break
            start = time.time()
            batch, pending = pending[: args.round_subjects], pending[args.round_subjects :]
            for subject in batch:
                ed, es = subject.frames
                for frame in (ed, es):
                    if not campaign.spent:
                        campaign.label(frame, ed=ed if frame is es else None)
            site.train(args.epochs)
            rows.append(_row(campaign, cohort, r, time.time() - start))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        site.stop()
    return rows


def _row(campaign: Campaign, cohort: Cohort, round_: int, seconds: float) -> Dict:
    ledger = campaign.ledger
    return {
        "strategy": campaign.strategy,
        "round": round_,
        "expert_cells": ledger.expert,
        "nonexpert_cells": ledger.nonexpert,
        "labelled_frames": len(campaign.labels),
        **evaluate(campaign, cohort),
        "seconds": round(seconds, 1),
    }


def seeded_work(args, cohort: Cohort, cines: bool):
    """The work folder and its seed site (``campaign_setup.seed_site``). ``--work`` keeps them, and a seed site
    made there for the same setting (``seed.json``) serves again: a stopped campaign continues without training
    its seed model anew. Otherwise a temporary folder."""
    work = args.work or tempfile.mkdtemp(prefix="campaign-")
    os.makedirs(work, exist_ok=True)
    keys = ("acdc", "fold", "seed_subjects", "cohort", "held_out", "seed_epochs", "seed")
    setting = {k: getattr(args, k) for k in keys}
    record = os.path.join(work, "seed.json")
    base = {"studies": os.path.join(work, "studies"), "models": os.path.join(work, "models")}
    seeded = json.load(open(record)) if os.path.isfile(record) else {}
    if {k: seeded.get(k) for k in keys} == setting and (seeded.get("cines") or not cines):  # cines: a superset
        print(f"seed site in {work} made for this setting: used again", flush=True)
        return work, base
    if os.path.isfile(record):
        os.remove(record)  # a rebuild that fails half-way must never pass for a seed site
    for folder in base.values():
        shutil.rmtree(folder, ignore_errors=True)
    base = seed_site(work, cohort, args.seed_epochs, cines=cines)
    with open(record, "w") as f:
        json.dump({**setting, "cines": cines}, f)
    return work, base


def reference_budget(cohort: Cohort) -> int:
    """What experts spend labelling the whole cohort from scratch: every class on every slice it is on."""
    return sum(len(cells(f.truth)) for s in cohort.cohort for f in s.frames)


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", default="", help="ACDC training folder (phantoms without it)")
    ap.add_argument("--fold", type=int, default=0, help="CV fold whose patients judge the retrained model")
    ap.add_argument("--seed-subjects", type=int, default=10)
    ap.add_argument("--cohort", type=int, default=40, help="cohort subjects (ACDC: of the fold's 80 minus the seed)")
    ap.add_argument("--held-out", type=int, default=1, help="phantoms only: held-out subjects")
    ap.add_argument("--round-subjects", type=int, default=8, help="subjects labelled per round")
    ap.add_argument("--rounds", type=int, default=100, help="at most this many rounds")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs after each round (every strategy)")
    ap.add_argument("--seed-epochs", type=int, default=30, help="the seed model's epochs (from scratch)")
    ap.add_argument("--budget", type=int, default=0, help="expert cells per strategy (0: the reference's total)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/campaign")
    ap.add_argument("--keep", action="store_true", help="keep the sites' studies and models (their path is printed)")
    ap.add_argument(
        "--work", default="", help="work here and keep it; a seed site made here for the same setting is used again"
    )
    args = ap.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        ap.error(f"unknown strategies {unknown}; choose among {sorted(STRATEGIES)}")
    started = time.time()
    if args.acdc:
        cohort = acdc_cohort(args.acdc, args.fold, args.seed_subjects, args.cohort, args.seed)
    else:
        cohort = phantom_cohort(args.seed_subjects, args.cohort, args.held_out, args.seed)
    args.budget = args.budget or reference_budget(cohort)
    work, base = seeded_work(args, cohort, cines="e" in strategies)
    results = {s: run_strategy(s, base, cohort, args, work) for s in strategies}
    summary = {"setting": _setting(args, cohort, time.time() - started), "rounds": results}
    os.makedirs(args.out, exist_ok=True)
    summary["headline"] = headline(results)
    print_table(results)
    print(json.dumps(summary["headline"], indent=1))
    plot(results, os.path.join(args.out, "campaign.png"))
    with open(os.path.join(args.out, "campaign.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if args.keep or args.work:
        summary["work"] = work
        print(f"sites kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _mean_dice(part: Dict) -> float:
    return float(np.mean([part["dice_lv"], part["dice_myo"], part["dice_rv"]]))


def headline(results: Dict[str, List[Dict]]) -> Dict:
    """Per strategy, the expert cells it needed to reach the reference's (a) end point: cohort LVEF MAE at most 3 %
    (the reference's final one where it never got there) and the retrained model's held-out mean Dice within 0.01
    of the reference's final; with the share of the reference's expert cells."""
    if "a" not in results:
        return {"note": "no reference strategy (a) was run"}
    final = results["a"][-1]
    target_ef = max(3.0, final["cohort"]["lvef_mae"])  # 3 %, or the reference's own where it never got there
    target_dice = _mean_dice(final["held_out"]) - 0.01
    out = {
        "reference_expert_cells": final["expert_cells"],
        "cohort_lvef_mae_target": round(target_ef, 2),
        "held_out_mean_dice_target": round(target_dice, 4),
        "strategies": {},
    }
    for strategy, rows in results.items():
        reached = next(
            (
                r
                for r in rows
                if r["labelled_frames"]
                and r["cohort"]["lvef_mae"] <= target_ef
                and _mean_dice(r["held_out"]) >= target_dice
            ),
            None,
        )
        out["strategies"][strategy] = {
            "expert_cells": reached["expert_cells"] if reached else None,
            "share_of_reference": round(reached["expert_cells"] / max(1, final["expert_cells"]), 3)
            if reached
            else None,
            "round": reached["round"] if reached else None,
        }
    return out


def plot(results: Dict[str, List[Dict]], path: str) -> None:
    """Cohort LVEF MAE and held-out mean Dice against expert cells spent, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, rows in results.items():
        x = [r["expert_cells"] for r in rows]
        axes[0].plot(x, [r["cohort"]["lvef_mae"] for r in rows], marker="o", label=f"({strategy})")
        axes[1].plot(x, [_mean_dice(r["held_out"]) for r in rows], marker="o", label=f"({strategy})")
    axes[0].axhline(3.0, color="grey", linestyle=":", linewidth=1)  # the headline's EF agreement
    axes[0].set(xlabel="expert cells (class x slice) touched", ylabel="cohort LVEF MAE (%)")
    axes[1].set(xlabel="expert cells (class x slice) touched", ylabel="retrained model, held-out mean Dice")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _setting(args, cohort: Cohort, seconds: float) -> Dict:
    return {
        "args": vars(args),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": round(seconds),
        "subjects": {"seed": len(cohort.seed), "cohort": len(cohort.cohort), "held_out": len(cohort.held_out)},
        "strategies": {k: STRATEGIES[k] for k in args.strategies.split(",") if k},
    }


def print_table(results: Dict[str, List[Dict]]) -> None:
    print(
        f"{'':2}{'round':>5} {'expert':>7} {'non-exp':>7} {'frames':>6}  cohort LV/MYO/RV   LVEF  mass   "
        "held-out LV/MYO/RV  LVEF"
    )
    for strategy, rows in results.items():
        for r in rows:
            c, h = r["cohort"], r["held_out"]
            print(
                f"{strategy:2}{r['round']:>5} {r['expert_cells']:>7} {r['nonexpert_cells']:>7} "
                f"{r['labelled_frames']:>6}  {c['dice_lv']:.3f}/{c['dice_myo']:.3f}/{c['dice_rv']:.3f} "
                f"{c['lvef_mae']:>5.1f} {c['lv_mass_mae']:>5.1f}   {h['dice_lv']:.3f}/{h['dice_myo']:.3f}/"
                f"{h['dice_rv']:.3f} {h['lvef_mae']:>5.1f}"
            )


if __name__ == "__main__":
    main()
