"""QC of one 3D frame's segmentation: learned slice figures, rule checks, rebuilt 3D Dice, raw and corrected volumes.

The report is plain JSON (schema in ``docs/qc.md``). Slice numbers are indices along the image's slice axis
(``slice_axis``, an ITK/Slicer IJK axis), counted from 0, so a viewer can jump to them.
"""

import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import ServedModel
from cmrassist_server.core.device import default_device
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.imageio import Orientation, frames_of
from cmrassist_server.imaging.preprocess import CardiacPreprocessor
from cmrassist_server.qc.metrics import (
    CHECKED_CLASSES,
    DEFAULT_THRESHOLD,
    QC_CLASSES,
    corrected_areas,
    flag_slices,
    rebuild_dice_3d,
    slice_counts,
)
from cmrassist_server.qc.model_view import FULL_SLICE, full_slice_view
from cmrassist_server.qc.network import QCModel, load_qc, predict_slices, qc_input, window_center
from cmrassist_server.qc.rules import Finding, RuleSettings, check_rules
from cmrassist_server.segmentation.network import SegmentationModel
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML

SCHEMA_VERSION = 1


def parse_thresholds(value) -> Dict[int, float]:
    """Thresholds per checked class from a number (all classes) or ``{"lv_cavity": 0.8, ...}``.

    Raises:
        ValueError: on unknown class names or values outside [0, 1].
    """
    out = dict.fromkeys(CHECKED_CLASSES, DEFAULT_THRESHOLD)
    if value is None or value == "":
        return out
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            raise CMRAssistError(f"threshold {value!r} is not a number", 422) from None
        out = dict.fromkeys(CHECKED_CLASSES, number)
    elif isinstance(value, dict):
        names = {QC_CLASSES[c]: c for c in CHECKED_CLASSES}
        for name, number in value.items():
            if name not in names:
                raise CMRAssistError(f"unknown class {name!r} in threshold; use {', '.join(names)}", 422)
            try:
                out[names[name]] = float(number)
            except (TypeError, ValueError):
                raise CMRAssistError(f"threshold for {name} {number!r} is not a number", 422) from None
    else:
        raise CMRAssistError("threshold must be a number or an object of per-class numbers", 422)
    if not all(0.0 <= t <= 1.0 for t in out.values()):
        raise CMRAssistError("thresholds must lie between 0 and 1", 422)
    return out


def frame_volumes(areas_mm2: Dict[int, np.ndarray], slice_mm: float) -> Dict[str, float]:
    """LV and RV cavity and myocardium volume (ml) and LV mass (g) from slice areas."""
    ml = {c: float(np.sum(a)) * slice_mm / 1000.0 for c, a in areas_mm2.items()}
    return {
        "lv_cavity_ml": ml[3],
        "rv_cavity_ml": ml[1],
        "lv_myocardium_ml": ml[2],
        "lv_mass_g": ml[2] * MYOCARDIAL_DENSITY_G_PER_ML,
    }


def _slice_centres_lps(image: sitk.Image, orientation: Orientation, n: int) -> Tuple[int, List[List[float]]]:
    """The slice axis (ITK index) and each slice's centre in physical (LPS) mm."""
    slice_k = 2 - orientation.axes[0]
    size = image.GetSize()
    centres = []
    for i in range(n):
        index = [(size[k] - 1) / 2 for k in range(3)]
        index[slice_k] = float(i)
        centres.append([round(v, 3) for v in image.TransformContinuousIndexToPhysicalPoint(index)])
    return slice_k, centres


class QualityChecker:
    """Checks 3D segmentations; reloads the QC model when its checkpoint changes (atomic publish => new mtime).

    Args:
        checkpoint: QC checkpoint path; without one (or before training) only the rule checks run.
        device: ``cuda``/``cpu``; CUDA when present by default.
        rules: rule thresholds.
    """

    def __init__(
        self,
        checkpoint: Optional[str],
        *,
        device: Optional[str] = None,
        rules: RuleSettings = RuleSettings(),
        segmentation: Optional[ServedModel] = None,
    ):
        self.checkpoint = checkpoint
        self.device = default_device(device)
        self.rules = rules
        self.served = ServedModel(checkpoint, lambda path: load_qc(path, self.device)) if checkpoint else None
        #: The segmentation model (served, a ``SegmentationPredictor`` or ensemble, or a bare model) whose view a QC
        #: model trained with ``model_inputs`` takes (``segmentation/views.py``).
        self.segmentation = segmentation
        self._wrapped: Optional[Tuple[SegmentationModel, SegmentationPredictor]] = None

    def model(self) -> Optional[QCModel]:
        """The loaded QC model; ``None`` before one is trained."""
        return self.served.get() if self.served is not None else None

    def predict(
        self, image_zyx: np.ndarray, label_zyx: np.ndarray, orientation: Orientation, loaded: Optional[QCModel]
    ) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Predicted slice Dice, MVSF and the checked label's slice counts at the QC spacing (``None`` untrained)."""
        if loaded is None:
            return None
        model, pre = loaded.network, CardiacPreprocessor(loaded.preprocess)
        predictor = self.predictor() if model.spec.model_inputs else None
        if model.spec.model_inputs and predictor is None:
            return None  # the QC model needs the segmentation network's view and none is served: rules only
        stack, _ = pre.resampled_stack(image_zyx, orientation)
        label = pre.resampled_label(label_zyx, orientation)
        probs = spread = None
        if predictor is not None:
            if abs(predictor.preprocessor.config.spacing_mm - pre.config.spacing_mm) > 1e-6:
                raise ValueError(
                    f"the segmentation model works at {predictor.preprocessor.config.spacing_mm} mm, "
                    f"the QC at {pre.config.spacing_mm} mm"
                )
            if model.spec.view == FULL_SLICE:  # a QC model trained before the view was the segmentation pass's
                seen = full_slice_view(predictor, stack)
            else:
                seen = predictor.stack_view(stack)  # the segmentation pass's own when it segmented this frame
            probs, spread = seen.probs, (seen.disagreement if model.spec.disagreement else None)
        x, features = qc_input(stack, label, window_center(label), model.spec.window, probs, disagreement=spread)
        dice, mvsf = predict_slices(model, x, self.device, features)
        return dice, mvsf, slice_counts(label)

    def predictor(self) -> Optional[SegmentationPredictor]:
        """The predictor whose view the QC takes: the served one, or an ensemble (``None`` when none is served).
        A bare model in hand is wrapped once, as a predictor of its own."""
        seg = self.segmentation
        held = seg.get() if isinstance(seg, ServedModel) else seg
        if isinstance(held, SegmentationModel):
            if self._wrapped is None or self._wrapped[0] is not held:
                self._wrapped = (held, SegmentationPredictor(model=held, device=self.device))
            return self._wrapped[1]
        return held

    def check(self, image: sitk.Image, label_zyx: np.ndarray, *, thresholds: Optional[Dict[int, float]] = None) -> Dict:
        """The QC report of a 3D frame and its label map (``(z, y, x)`` array on the image grid)."""
        start = time.time()
        if image.GetDimension() != 3:
            raise CMRAssistError("QC checks one 3D frame; pick the ED or ES frame of a cine first", 422)
        thresholds = thresholds or dict.fromkeys(CHECKED_CLASSES, DEFAULT_THRESHOLD)
        orientation = Orientation.of(image)
        canonical = orientation.to_canonical(label_zyx.astype(np.uint8))
        n = canonical.shape[0]
        slice_mm, row_mm, col_mm = orientation.spacing
        counts = slice_counts(canonical)
        areas = {c: counts[:, c] * row_mm * col_mm for c in CHECKED_CLASSES}
        findings = check_rules(canonical, self.rules, pixel_mm2=row_mm * col_mm)
        loaded = self.model()
        predicted = self.predict(frames_of(image)[0], label_zyx, orientation, loaded)
        learned_flags = (
            flag_slices(predicted[0], thresholds) if predicted is not None else np.zeros((n, len(QC_CLASSES)), bool)
        )
        flags = learned_flags | _rule_flags(findings, n)
        dice_3d = None
        if predicted is not None:
            rebuilt = rebuild_dice_3d(predicted[2], predicted[0], predicted[1])
            dice_3d = {QC_CLASSES[c]: round(float(rebuilt[c]), 4) for c in CHECKED_CLASSES}
        slice_k, centres = _slice_centres_lps(image, orientation, n)
        slices = [
            _slice_entry(i, centres[i], areas, flags, learned_flags, predicted, thresholds, findings) for i in range(n)
        ]
        corrected = {c: corrected_areas(areas[c], flags[:, c]) for c in CHECKED_CLASSES}
        return {
            "schema_version": SCHEMA_VERSION,
            "learned": predicted is not None,
            "qc_model": loaded.record if loaded is not None else None,
            "thresholds": {QC_CLASSES[c]: thresholds[c] for c in CHECKED_CLASSES},
            "slice_axis": slice_k,
            "spacing_mm": [slice_mm, row_mm, col_mm],
            "slices": slices,
            "dice_3d": dice_3d,
            "frame_rules": [f.as_dict() for f in findings if f.slice is None],
            "volumes": {
                "raw": _rounded(frame_volumes(areas, slice_mm)),
                "corrected": _rounded(frame_volumes(corrected, slice_mm)),
            },
            "summary": _summary(slices, flags, findings, dice_3d),
            "seconds": round(time.time() - start, 4),
        }


def _rule_flags(findings: List[Finding], n: int) -> np.ndarray:
    """``(slices, classes)``: where a rule finding flags a slice (all checked classes when it names none)."""
    flags = np.zeros((n, len(QC_CLASSES)), dtype=bool)
    for f in findings:
        if f.slice is not None:
            flags[f.slice, [QC_CLASSES.index(f.cls)] if f.cls else list(CHECKED_CLASSES)] = True
    return flags


def _slice_entry(
    i: int, centre: List[float], areas, flags, learned_flags, predicted, thresholds, findings: List[Finding]
) -> Dict:
    """One slice's row of the report: per class area, flag and (learned) Dice and MVSF; reasons; rule findings."""
    classes, reasons = {}, []
    for c in CHECKED_CLASSES:
        name = QC_CLASSES[c]
        entry = {"area_mm2": round(float(areas[c][i]), 1), "flagged": bool(flags[i, c])}
        if predicted is not None:
            entry["dice"] = round(float(predicted[0][i, c]), 4)
            entry["mvsf"] = round(float(predicted[1][i, c]), 4)
            if learned_flags[i, c]:
                reasons.append(f"{name}: predicted Dice {predicted[0][i, c]:.2f} < {thresholds[c]:.2f}")
        classes[name] = entry
    slice_rules = [f.as_dict() for f in findings if f.slice == i]
    return {
        "slice": i,
        "center_lps": centre,
        "classes": classes,
        "flagged": bool(flags[i].any()),
        "reasons": reasons + [f["message"] for f in slice_rules],
        "rules": slice_rules,
    }


def _summary(slices: List[Dict], flags: np.ndarray, findings: List[Finding], dice_3d: Optional[Dict]) -> Dict:
    n = len(slices)
    worst = min(dice_3d.values()) if dice_3d else None
    flagged_cells = int(flags[:, list(CHECKED_CLASSES)].sum())
    rule_slices = len({f.slice for f in findings if f.slice is not None})
    # Higher = more in need of review: 1 - worst rebuilt Dice, the share of flagged slice-classes and the share of
    # slices breaking a rule (a rule finding is a certain error, a low prediction a likely one).
    priority = (
        (1 - worst if worst is not None else 0.0)
        + flagged_cells / max(1, n * len(CHECKED_CLASSES))
        + rule_slices / max(1, n)
        + (1.0 if any(f.slice is None for f in findings) else 0.0)
    )
    return {
        "slices": n,
        "flagged_slices": [s["slice"] for s in slices if s["flagged"]],
        "worst_dice_3d": worst,
        "rule_findings": len(findings),
        "review_priority": round(priority, 4),
    }


def _rounded(d: Dict[str, float]) -> Dict[str, float]:
    return {k: round(v, 2) for k, v in d.items()}
