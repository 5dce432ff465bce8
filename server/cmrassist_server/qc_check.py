"""QC of one 3D frame's segmentation: learned slice figures, rule checks, rebuilt 3D Dice, raw and corrected volumes.

The report is plain JSON (schema in ``docs/qc.md``). Slice numbers are indices along the image's slice axis
(``slice_axis``, an ITK/Slicer IJK axis), counted from 0, so a viewer can jump to them.
"""

import os
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML

from .imageio import Orientation, frames_of
from .preprocess import CardiacPreprocessor, PreprocessConfig
from .qc_metrics import CHECKED_CLASSES, DEFAULT_THRESHOLD, QC_CLASSES, corrected_areas, flag_slices, rebuild_dice_3d, slice_counts
from .qc_network import QCNet, load_qc, predict_slices, qc_input, window_center
from .qc_rules import RuleSettings, check_rules

SCHEMA_VERSION = 1


def parse_thresholds(value) -> Dict[int, float]:
    """Thresholds per checked class from a number (all classes) or ``{"lv_cavity": 0.8, ...}``.

    Raises:
        ValueError: on unknown class names or values outside [0, 1].
    """
    out = {c: DEFAULT_THRESHOLD for c in CHECKED_CLASSES}
    if value is None or value == "":
        return out
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"threshold {value!r} is not a number") from None
        out = {c: number for c in CHECKED_CLASSES}
    elif isinstance(value, dict):
        names = {QC_CLASSES[c]: c for c in CHECKED_CLASSES}
        for name, number in value.items():
            if name not in names:
                raise ValueError(f"unknown class {name!r} in threshold; use {', '.join(names)}")
            try:
                out[names[name]] = float(number)
            except (TypeError, ValueError):
                raise ValueError(f"threshold for {name} {number!r} is not a number") from None
    else:
        raise ValueError("threshold must be a number or an object of per-class numbers")
    if not all(0.0 <= t <= 1.0 for t in out.values()):
        raise ValueError("thresholds must lie between 0 and 1")
    return out


def frame_volumes(areas_mm2: Dict[int, np.ndarray], slice_mm: float) -> Dict[str, float]:
    """LV and RV cavity and myocardium volume (ml) and LV mass (g) from slice areas."""
    ml = {c: float(np.sum(a)) * slice_mm / 1000.0 for c, a in areas_mm2.items()}
    return {"lv_cavity_ml": ml[3], "rv_cavity_ml": ml[1], "lv_myocardium_ml": ml[2],
            "lv_mass_g": ml[2] * MYOCARDIAL_DENSITY_G_PER_ML}


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

    def __init__(self, checkpoint: Optional[str], *, device: Optional[str] = None, rules: RuleSettings = RuleSettings()):
        self.checkpoint = checkpoint
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.rules = rules
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[float, int]] = None
        self._model: Optional[Tuple[QCNet, PreprocessConfig, Dict]] = None

    def model(self) -> Optional[Tuple[QCNet, PreprocessConfig, Dict]]:
        """The loaded QC model, its preprocessing and record; ``None`` before one is trained."""
        if not self.checkpoint or not os.path.isfile(self.checkpoint):
            return None
        st = os.stat(self.checkpoint)
        with self._lock:
            if self._model is None or (st.st_mtime, st.st_ino) != self._stamp:
                self._model = load_qc(self.checkpoint, self.device)
                self._stamp = (st.st_mtime, st.st_ino)
            return self._model

    def predict(self, image_zyx: np.ndarray, label_zyx: np.ndarray, orientation: Orientation,
                loaded: Optional[Tuple[QCNet, PreprocessConfig, Dict]]) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Predicted slice Dice, MVSF and the checked label's slice counts at the QC spacing (``None`` untrained)."""
        if loaded is None:
            return None
        model, config, _ = loaded
        pre = CardiacPreprocessor(config)
        stack, _ = pre.resampled_stack(image_zyx, orientation)
        label = pre.resampled_label(label_zyx, orientation)
        x = qc_input(stack, label, window_center(label), model.spec.window)
        dice, mvsf = predict_slices(model, x, self.device)
        return dice, mvsf, slice_counts(label)

    def check(self, image: sitk.Image, label_zyx: np.ndarray, *, thresholds: Optional[Dict[int, float]] = None) -> Dict:
        """The QC report of a 3D frame and its label map (``(z, y, x)`` array on the image grid)."""
        start = time.time()
        if image.GetDimension() != 3:
            raise ValueError("QC checks one 3D frame; pick the ED or ES frame of a cine first")
        thresholds = thresholds or {c: DEFAULT_THRESHOLD for c in CHECKED_CLASSES}
        orientation = Orientation.of(image)
        frame = frames_of(image)[0]
        canonical = orientation.to_canonical(label_zyx.astype(np.uint8))
        n = canonical.shape[0]
        slice_mm, row_mm, col_mm = orientation.spacing
        counts = slice_counts(canonical)
        areas = {c: counts[:, c] * row_mm * col_mm for c in CHECKED_CLASSES}

        findings = check_rules(canonical, self.rules, pixel_mm2=row_mm * col_mm)
        rule_flags = np.zeros((n, len(QC_CLASSES)), dtype=bool)
        for f in findings:
            if f.slice is not None:
                cols = [QC_CLASSES.index(f.cls)] if f.cls else list(CHECKED_CLASSES)
                rule_flags[f.slice, cols] = True

        loaded = self.model()
        predicted = self.predict(frame, label_zyx, orientation, loaded)
        learned_flags = np.zeros_like(rule_flags)
        dice_3d = None
        if predicted is not None:
            dice, mvsf, qc_counts = predicted
            learned_flags = flag_slices(dice, thresholds)
            rebuilt = rebuild_dice_3d(qc_counts, dice, mvsf)
            dice_3d = {QC_CLASSES[c]: round(float(rebuilt[c]), 4) for c in CHECKED_CLASSES}
        flags = learned_flags | rule_flags

        slice_k, centres = _slice_centres_lps(image, orientation, n)
        slices = []
        for i in range(n):
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
            reasons += [f["message"] for f in slice_rules]
            slices.append({"slice": i, "center_lps": centres[i], "classes": classes, "flagged": bool(flags[i].any()),
                           "reasons": reasons, "rules": slice_rules})

        raw = frame_volumes(areas, slice_mm)
        corrected = frame_volumes({c: corrected_areas(areas[c], flags[:, c]) for c in CHECKED_CLASSES}, slice_mm)
        worst = min(dice_3d.values()) if dice_3d else None
        flagged_cells = int(flags[:, list(CHECKED_CLASSES)].sum())
        rule_slices = len({f.slice for f in findings if f.slice is not None})
        return {
            "schema_version": SCHEMA_VERSION,
            "learned": predicted is not None,
            "qc_model": loaded[2] if loaded is not None else None,
            "thresholds": {QC_CLASSES[c]: thresholds[c] for c in CHECKED_CLASSES},
            "slice_axis": slice_k,
            "spacing_mm": [slice_mm, row_mm, col_mm],
            "slices": slices,
            "dice_3d": dice_3d,
            "frame_rules": [f.as_dict() for f in findings if f.slice is None],
            "volumes": {"raw": _rounded(raw), "corrected": _rounded(corrected)},
            "summary": {
                "slices": n,
                "flagged_slices": [s["slice"] for s in slices if s["flagged"]],
                "worst_dice_3d": worst,
                "rule_findings": len(findings),
                # Higher = more in need of review: 1 - worst rebuilt Dice, the share of flagged slice-classes and
                # the share of slices breaking a rule (a rule finding is a certain error, a low prediction a likely one).
                "review_priority": round((1 - worst if worst is not None else 0.0)
                                         + flagged_cells / max(1, n * len(CHECKED_CLASSES))
                                         + rule_slices / max(1, n)
                                         + (1.0 if any(f.slice is None for f in findings) else 0.0), 4),
            },
            "seconds": round(time.time() - start, 4),
        }


def _rounded(d: Dict[str, float]) -> Dict[str, float]:
    return {k: round(v, 2) for k, v in d.items()}
