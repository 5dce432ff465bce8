#!/usr/bin/env python
"""ACDC slice-position benchmark: ranking batches of 8 vs labelling one slice at a time, at equal annotator time.

Truth: each ED/ES slice's position from the expert labels with the published definitions
(``position_data.positions_from_label``): too basal (blood pool less than half enclosed by myocardium, or no LV
on the basal side), in the LV, too apical (no LV myocardium beyond the apex), and a continuous position
(0 at the basal boundary, 1 at the apical one, in steps of 1 / in-LV slices).

Simulated annotators see a slice's continuous position with their own bias and spread, and three times the
spread near either boundary (where experts disagree). Both strategies use the same perception; only how the
answers are asked for and combined differs:

- one at a time: the annotator says too basal / in LV / too apical for one slice (``--seconds-per-slice``);
  each slice's label is the annotators' majority (slices nobody reached are left out of training);
- ranking: the annotator orders 8 slices from different studies (``--seconds-per-batch``), through the real
  ``RankingStore`` (openskill Plackett-Luce); a simulated expert reviewer then places the two cut points by a
  binary search over the ordered list, judging a window of 5 slices at each step.

Arms: one at a time, ranking with our batch selection, ranking with random batches, and the true labels (an
upper bound). Each arm trains the slice-position classifier (same code as the server's ``slice_position`` train
task) for the same CPU budget on the 80 training patients' derived labels (validation: 20% of them, with that
arm's own labels) and is scored against the truth on the 20 held-out patients.

    .venv/bin/python bench/ranking_acdc.py --acdc ../shared/acdc/training --hours 1 --classifier-minutes 3
"""

import argparse
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients
from cmrassist_server.slice_position.data import (
    SlicePositions,
    labelled_stacks,
    positions_from_label,
    ranking_positions,
)
from cmrassist_server.slice_position.network import POSITIONS, predict_positions
from cmrassist_server.slice_position.ranking_store import RankingStore
from cmrassist_server.slice_position.training import LabelledStack, PositionTrainOptions, train_position

HELD_OUT = [g * 20 + k for g in range(5) for k in range(17, 21)]
BOUNDARY_WIDTH = 0.15  # in LV lengths: within this of a boundary, perception is up to 3x noisier


@dataclass(frozen=True)
class Annotator:
    name: str
    bias: float  # shifts every perceived position (a personal idea of where the base and apex are)
    spread: float  # perception noise away from the boundaries

    def perceive(self, t: float, rng: np.random.Generator) -> float:
        near = min(abs(t), abs(t - 1.0))
        sd = self.spread * (1 + 2 * math.exp(-((near / BOUNDARY_WIDTH) ** 2)))
        return t + self.bias + rng.normal(0, sd)

    def judge(self, t: float, rng: np.random.Generator) -> str:
        seen = self.perceive(t, rng)
        return "too_basal" if seen < 0 else "too_apical" if seen > 1 else "in_lv"


def load_truth(root: str, numbers: List[int]) -> Tuple[SlicePositions, Dict[str, str], Dict[str, str]]:
    """True positions per frame id, image paths and subjects."""
    truth, paths, subjects = {}, {}, {}
    for p in find_patients(root, set(numbers)):
        for phase, frame in (("ed", p.ed_frame), ("es", p.es_frame)):
            label = sitk.ReadImage(p.frame_path(frame, gt=True))
            canonical = Orientation.of(label).to_canonical(sitk.GetArrayFromImage(label))
            image_id = f"{p.name}_{phase}"
            truth[(image_id, 1)] = dict(enumerate(positions_from_label(canonical)))
            paths[image_id], subjects[image_id] = p.frame_path(frame), p.name
    return truth, paths, subjects


def one_at_a_time(
    truth: SlicePositions, annotators: List[Annotator], labels_each: int, rng: np.random.Generator
) -> SlicePositions:
    """Each annotator labels ``labels_each`` slices, every slice once before any twice; majority per slice."""
    keys = [(i, k) for i, known in truth.items() for k in known]
    votes: Dict[Tuple[Tuple[str, int], int], List[str]] = {}
    queue = [keys[j] for j in rng.permutation(len(keys))]
    cursor = 0
    seen: Dict[str, set] = {a.name: set() for a in annotators}
    for _ in range(labels_each):
        for a in annotators:  # side by side, taking the next slice of a shared queue that they have not labelled
            if len(seen[a.name]) >= len(keys):
                break
            while queue[cursor % len(queue)] in seen[a.name]:
                cursor += 1
            key = queue[cursor % len(queue)]
            cursor += 1
            seen[a.name].add(key)
            votes.setdefault(key, []).append(a.judge(truth[key[0]][key[1]][1], rng))
    # Inter-annotator agreement on slices labelled twice or more (the published experts reached kappa 0.77).
    pairs = [(vs[0], vs[1]) for vs in votes.values() if len(vs) >= 2]
    one_at_a_time.kappa = cohen_kappa(pairs)  # type: ignore[attr-defined]
    out: SlicePositions = {}
    for (frame_key, k), vs in votes.items():
        counts = {p: vs.count(p) for p in POSITIONS}
        top = max(counts.values())
        winners = [p for p in POSITIONS if counts[p] == top]
        out.setdefault(frame_key, {})[k] = ("in_lv" if "in_lv" in winners else winners[0], float("nan"))
    return out


def cohen_kappa(pairs: List[Tuple[str, str]]) -> float:
    if not pairs:
        return float("nan")
    a, b = zip(*pairs)
    observed = np.mean([x == y for x, y in pairs])
    expected = sum((a.count(p) / len(a)) * (b.count(p) / len(b)) for p in POSITIONS)
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def ranking(
    truth: SlicePositions,
    annotators: List[Annotator],
    batches_each: int,
    reviewer: Annotator,
    rng: np.random.Generator,
    *,
    selection: str,
    db: str,
) -> Tuple[SlicePositions, Dict]:
    """Rank through the real store, then let the reviewer place the cut points; positions and figures."""
    from scipy.stats import kendalltau

    store = RankingStore(db)
    for (image_id, frame), known in sorted(truth.items()):
        store.add_items(image_id, frame, len(known))
    t_of = {it.id: truth[(it.image_id, it.frame)][it.slice][1] for it in store.items()}
    start = time.perf_counter()
    for _ in range(batches_each):
        open_batches = [
            (a, store.next_batch(a.name, "expert", seed=int(rng.integers(1 << 30)), selection=selection))
            for a in annotators
        ]
        for a, batch in open_batches:
            seen = {it.id: a.perceive(t_of[it.id], rng) for it in batch.items}
            store.submit(batch.id, a.name, sorted(seen, key=seen.get))  # most basal (smallest t) first
    store_s = time.perf_counter() - start
    ordered = store.ordered()  # most basal first
    tau = kendalltau([-it.mu for it in ordered], [t_of[it.id] for it in ordered])[0]
    looks = 0

    def cut(items, beyond: str) -> int:
        """Binary search: how many of ``items`` (from one end) the reviewer calls ``beyond`` the LV."""
        nonlocal looks
        lo, hi = -1, len(items)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            window = items[max(0, mid - 2) : mid + 3]
            looks += len(window)
            calls = [reviewer.judge(t_of[it.id], rng) == beyond for it in window]
            lo, hi = (mid, hi) if sum(calls) * 2 > len(calls) else (lo, mid)
        return hi

    n_basal = cut(ordered, "too_basal")
    n_apical = cut(ordered[::-1], "too_apical")
    rating = [it.rating for it in ordered]
    basal_end = (
        (rating[n_basal - 1] + rating[n_basal]) / 2
        if 0 < n_basal < len(rating)
        else (rating[0] + 1 if n_basal == 0 else 0.0)
    )
    k = len(rating) - n_apical
    apical_start = (rating[k - 1] + rating[k]) / 2 if 0 < k < len(rating) else rating[-1] - 1
    apical_start = min(apical_start, basal_end - 1e-3)
    store.set_cut_points(max(0.0, min(3000.0, basal_end)), max(0.0, min(3000.0, apical_start)))
    positions = ranking_positions(store)
    views = [it.views for it in store.items()]
    return positions, {
        "kendall_tau": round(float(tau), 4),
        "reviewer_looks": looks,
        "store_seconds": round(store_s, 1),
        "views_median": float(np.median(views)),
        "items_unseen": int(sum(v == 0 for v in views)),
        "cut_points": store.cut_points(),
    }


def agreement(derived: SlicePositions, truth: SlicePositions) -> Dict:
    total = sum(len(v) for v in truth.values())
    pairs = [(p, truth[key][k][0]) for key, known in derived.items() for k, (p, _) in known.items()]
    outside = [(p, t) for p, t in pairs if t != "in_lv"]
    return {
        "labelled_slices": len(pairs),
        "coverage": round(len(pairs) / total, 4),
        "agreement": round(float(np.mean([p == t for p, t in pairs])), 4) if pairs else None,
        "agreement_outside_lv": round(float(np.mean([p == t for p, t in outside])), 4) if outside else None,
    }


def restrict(stacks: Dict[Tuple[str, int], LabelledStack], positions: SlicePositions) -> List[LabelledStack]:
    """The frames' inputs with ``positions`` as their labels (unknown slices -1 / NaN)."""
    out = []
    for key, base in stacks.items():
        labels = np.full(len(base.labels), -1, np.int64)
        continuous = np.full(len(base.labels), np.nan, np.float32)
        for k, (p, t) in positions.get(key, {}).items():
            labels[k], continuous[k] = POSITIONS.index(p), t
        if (labels >= 0).any():
            out.append(
                LabelledStack(base.image_id, base.subject, base.x, base.place, labels, continuous, frame=base.frame)
            )
    return out


def score(checkpoint: str, test: List[LabelledStack]) -> Dict:
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    from cmrassist_server.slice_position.network import load_position

    model, _ = load_position(checkpoint)
    from scipy.stats import spearmanr

    y, prob, t_true, t_pred = [], [], [], []
    for s in test:
        p, t = predict_positions(model, s.x, s.place, "cpu")
        y.append(s.labels)
        prob.append(p)
        t_true.append(s.continuous)
        t_pred.append(t)
    y, prob = np.concatenate(y), np.concatenate(prob)
    t_true, t_pred = np.concatenate(t_true), np.concatenate(t_pred)
    pred = prob.argmax(1)
    return {
        "accuracy": round(float(np.mean(pred == y)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(y, pred)), 4),
        "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
        "roc_auc_ovr_macro": round(float(roc_auc_score(y, prob, multi_class="ovr", average="macro")), 4),
        "per_class_recall": {
            name: round(float(np.mean(pred[y == c] == c)), 4) for c, name in enumerate(POSITIONS) if (y == c).any()
        },
        "continuous_spearman": round(float(spearmanr(t_true, t_pred)[0]), 4),
        "slices": int(len(y)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", required=True, help="ACDC training folder (patient001 ... patient100)")
    ap.add_argument("--annotators", type=int, default=3)
    ap.add_argument(
        "--hours", type=float, default=1.0, help="labelling time per annotator, the same for both strategies"
    )
    ap.add_argument(
        "--seconds-per-slice",
        type=float,
        default=4.0,
        help="one slice at a time: look at it (and its neighbours), press one of three keys",
    )
    ap.add_argument(
        "--seconds-per-batch",
        type=float,
        default=30.0,
        help="a batch of 8 thumbnails: about 7 drags, a last look, submit",
    )
    ap.add_argument("--bias-sd", type=float, default=0.05, help="spread of the annotators' biases (LV lengths)")
    ap.add_argument(
        "--spread",
        type=float,
        default=0.035,
        help="typical perception noise away from the boundaries (LV lengths; 3x at a boundary)",
    )
    ap.add_argument(
        "--classifier-minutes", type=float, default=3.0, help="CPU training budget of each arm's classifier"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for results.json and the checkpoints")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="ranking_acdc_")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)

    train_numbers = [n for n in range(1, 101) if n not in HELD_OUT]
    truth_train, paths, subjects = load_truth(args.acdc, train_numbers)
    truth_test, test_paths, test_subjects = load_truth(args.acdc, HELD_OUT)
    paths.update(test_paths)
    subjects.update(test_subjects)
    print(
        f"truth: {sum(len(v) for v in truth_train.values())} training slices, "
        f"{sum(len(v) for v in truth_test.values())} held-out slices",
        flush=True,
    )
    all_truth = {**truth_train, **truth_test}
    stacks = {(s.image_id, s.frame): s for s in labelled_stacks(all_truth, paths.get, subjects.get)}
    test = [stacks[key] for key in sorted(truth_test)]
    train_stacks = {key: stacks[key] for key in truth_train}

    # Calibrated so that two annotators' slice labels agree with Cohen's kappa near the published 0.77.
    annotators = [
        Annotator(f"annotator{k + 1}", float(rng.normal(0, args.bias_sd)), float(rng.uniform(0.5, 1.5) * args.spread))
        for k in range(args.annotators)
    ]
    reviewer = Annotator("reviewer", 0.0, args.spread / 2)
    budget_s = args.hours * 3600
    labels_each = int(budget_s // args.seconds_per_slice)
    batches_each = int(budget_s // args.seconds_per_batch)

    arms: Dict[str, Dict] = {}
    derived: Dict[str, SlicePositions] = {}
    derived["one_at_a_time"] = one_at_a_time(truth_train, annotators, labels_each, rng)
    arms["one_at_a_time"] = {
        "labels_per_annotator": labels_each,
        "inter_annotator_kappa": round(one_at_a_time.kappa, 3),
    }  # type: ignore[attr-defined]
    for name, selection in (("ranking_ours", "informative"), ("ranking_random", "random")):
        db = os.path.join(out, f"{name}.sqlite")
        if os.path.exists(db):
            os.remove(db)
        derived[name], figures = ranking(
            truth_train, annotators, batches_each, reviewer, rng, selection=selection, db=db
        )
        arms[name] = {"batches_per_annotator": batches_each, **figures}
    derived["truth"] = truth_train
    arms["truth"] = {}
    for name in derived:
        arms[name].update(agreement(derived[name], truth_train))
        print(name, json.dumps(arms[name]), flush=True)

    for name, positions in derived.items():
        checkpoint = os.path.join(out, f"{name}.pt")
        if os.path.exists(checkpoint):
            os.remove(checkpoint)
        options = PositionTrainOptions(max_epochs=10_000, max_minutes=args.classifier_minutes, seed=args.seed)
        result = train_position(restrict(train_stacks, positions), checkpoint, options, log=lambda *a, **k: None)
        arms[name]["classifier"] = {
            "epochs": result.epochs,
            "val_on_own_labels": result.best_val,
            "held_out": score(checkpoint, test),
        }
        print(name, "held-out", json.dumps(arms[name]["classifier"]["held_out"]), flush=True)

    test_labels = np.concatenate([s.labels for s in test])
    result = {
        "arms": arms,
        "held_out_patients": len(HELD_OUT),
        "held_out_class_counts": {p: int((test_labels == c).sum()) for c, p in enumerate(POSITIONS)},
        "always_in_lv_accuracy": round(float(np.mean(test_labels == POSITIONS.index("in_lv"))), 4),
        "annotators": [asdict(a) for a in annotators],
        "reviewer": asdict(reviewer),
        "time_per_annotator_s": budget_s,
        "seconds_per_slice": args.seconds_per_slice,
        "seconds_per_batch": args.seconds_per_batch,
        "setting": {
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
            "classifier_minutes_per_arm": args.classifier_minutes,
            "seed": args.seed,
        },
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
