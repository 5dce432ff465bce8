"""QC scored on held-out ACDC patients: predicted against true slice and subject (3D) Dice, for the segmentation
model's own labels ("model") and for varied ones ("varied": corruptions of the expert label), good/bad accuracy
at 0.7 and the QC time per subject (ED and ES). Used by the QC model's card and by ``bench/qc_acdc.py``."""

import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.acdc import find_patients
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.corruptions import corrupt
from cmrassist_server.qc.metrics import CHECKED_CLASSES, QC_CLASSES, dice_3d, slice_dice_mvsf
from cmrassist_server.segmentation.heldout import HELD_OUT
from cmrassist_server.segmentation.predictor import SegmentationPredictor

GOOD = 0.7  # a slice or volume under this Dice is "bad" (the published good/bad split)


def pearson(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else float("nan")


def score_report(report: Dict, reference: np.ndarray, label: np.ndarray, orientation: Orientation, source: str):
    """Per-slice rows and the subject row of one QC report against the truth (``reference`` vs ``label``)."""
    canon_ref, canon_seg = orientation.to_canonical(reference), orientation.to_canonical(label)
    true_dice, _ = slice_dice_mvsf(canon_ref, canon_seg)
    rows = []
    for s in report["slices"]:
        i = s["slice"]
        pred = [1.0] + [s["classes"][QC_CLASSES[c]]["dice"] for c in CHECKED_CLASSES]
        present = [True] + [bool((canon_ref[i] == c).any() or (canon_seg[i] == c).any()) for c in CHECKED_CLASSES]
        rows.append({"true": true_dice[i].tolist(), "pred": pred, "present": present, "source": source})
    subject = {
        "true": dice_3d(reference, label).tolist(),
        "source": source,
        "pred": [1.0] + [report["dice_3d"][QC_CLASSES[c]] for c in CHECKED_CLASSES],
    }
    return rows, subject


def summarise(rows: List[Dict], subjects: List[Dict]) -> Dict:
    """Slice MAE (all slices, and where the class is present), subject MAE, accuracy at 0.7, Pearson r."""
    out: Dict = {}
    for c in CHECKED_CLASSES:
        true, pred = (np.array([r[k][c] for r in rows]) for k in ("true", "pred"))
        present = np.array([r["present"][c] for r in rows])
        st, sp = (np.array([s[k][c] for s in subjects]) for k in ("true", "pred"))
        out[QC_CLASSES[c]] = {
            "slice_mae": float(np.abs(true - pred).mean()),
            "slice_mae_present": float(np.abs(true - pred)[present].mean()),
            "subject_mae": float(np.abs(st - sp).mean()),
            "accuracy_at_0.7": float(((true < GOOD) == (pred < GOOD))[present].mean()),
            "bad_slices": int((true[present] < GOOD).sum()),
            "pearson_r": pearson(true[present], pred[present]),
            "subject_pearson_r": pearson(st, sp),
            "slices": int(len(true)),
            "slices_present": int(present.sum()),
            "subjects": int(len(st)),
        }
    keys = ("slice_mae", "slice_mae_present", "subject_mae", "accuracy_at_0.7", "pearson_r")
    out["mean"] = {k: float(np.mean([out[QC_CLASSES[c]][k] for c in CHECKED_CLASSES])) for k in keys}
    return out


def evaluate_qc_acdc(
    checker: QualityChecker,
    segmentation: SegmentationPredictor,
    acdc: str,
    patients: Sequence[int] = HELD_OUT,
    *,
    corruptions: int = 2,
    seed: int = 1234,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Dict:
    """QC of every ED and ES frame of ``patients``: the segmentation model's labels and ``corruptions`` corrupted
    expert labels per frame, scored against the truth.

    Returns:
        ``{"model": summary, "varied": summary, "qc_seconds_per_subject": {"median", "p95"}}``.
    """
    rng = np.random.default_rng(seed)
    rows: Dict[str, List] = {"model": [], "varied": []}
    subjects: Dict[str, List] = {"model": [], "varied": []}
    seconds = []
    found = find_patients(acdc, set(patients))
    for n, p in enumerate(found, start=1):
        spent = 0.0
        for frame in (p.ed_frame, p.es_frame):
            image = sitk.ReadImage(p.frame_path(frame))
            reference = sitk.GetArrayFromImage(sitk.ReadImage(p.frame_path(frame, gt=True))).astype(np.uint8)
            orientation = Orientation.of(image)
            labels = [("model", segmentation.segment(image))]
            for _ in range(corruptions):
                labels.append(
                    ("varied", orientation.from_canonical(corrupt(orientation.to_canonical(reference), rng)[0]))
                )
            for group, label in labels:
                start = time.time()
                report = checker.check(image, label)
                spent += time.time() - start if group == "model" else 0.0
                slice_rows, subject = score_report(report, reference, label, orientation, group)
                rows[group] += slice_rows
                subjects[group].append(subject)
        seconds.append(spent)
        if progress:
            progress(n, len(found))
    return {
        "model": summarise(rows["model"], subjects["model"]),
        "varied": summarise(rows["varied"], subjects["varied"]),
        "qc_seconds_per_subject": {"median": float(np.median(seconds)), "p95": float(np.percentile(seconds, 95))},
    }


def format_qc_summary(result: Dict) -> str:
    """The figures as a table: one line per group and class."""
    lines = [f"{'labels':<8}{'class':<15}{'sliceMAE':>9}{'subjMAE':>9}{'acc@0.7':>9}{'r':>7}{'slices':>8}"]
    for group in ("model", "varied"):
        for c in CHECKED_CLASSES:
            m = result[group][QC_CLASSES[c]]
            lines.append(
                f"{group:<8}{QC_CLASSES[c]:<15}{m['slice_mae']:>9.3f}{m['subject_mae']:>9.3f}"
                f"{m['accuracy_at_0.7']:>9.3f}{m['pearson_r']:>7.3f}{m['slices']:>8d}"
            )
    q = result["qc_seconds_per_subject"]
    lines.append(f"QC time per subject (ED+ES): median {q['median'] * 1000:.0f} ms, p95 {q['p95'] * 1000:.0f} ms")
    return "\n".join(lines)


#: Dice bins of the published QC protocol: segmentations of widely varying quality sampled evenly over them.
PROTOCOL_BINS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)


def protocol_mae(model, dataset, device: str, edges: Sequence[float] = PROTOCOL_BINS) -> Dict:
    """Slice Dice MAE of a QC network over a varied set (``qc/dataset.QCTrainingSet``), each Dice bin weighted
    equally, as sampling evenly over the bins would (the published protocol).

    Every slice is binned by its true quality (mean Dice of the checked classes it holds); the error of a slice is
    the mean absolute error over those classes.

    Returns:
        ``{"slice_mae": mean over the bins that hold slices, "bins": {"0.0-0.2": {"mae", "slices"}, ...}}``.
    """
    from cmrassist_server.qc.network import predict_slices

    pairs = dataset.slices()
    quality = dataset.slice_quality(pairs)
    errors = np.empty(len(pairs))
    for start in range(0, len(pairs), 256):
        part = pairs[start : start + 256]
        x, y, f = dataset.inputs(part)
        dice, _ = predict_slices(model, x[:, : model.spec.in_channels], device, f if model.spec.n_features else None)
        for k, (v, z) in enumerate(part):
            present = dataset.present(v, z)
            errors[start + k] = float(np.abs(dice[k, present] - y[k, present].numpy()).mean()) if present else 0.0
    bins = {}
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (quality >= low) & ((quality < high) if high < 1.0 else (quality <= high))
        bins[f"{low:.1f}-{high:.1f}"] = {
            "mae": float(errors[inside].mean()) if inside.any() else None,
            "slices": int(inside.sum()),
        }
    held = [b["mae"] for b in bins.values() if b["mae"] is not None]
    return {"slice_mae": float(np.mean(held)) if held else None, "bins": bins}
