"""Rule-based checks of a short-axis label map; they need no trained model and are reported beside learned QC.

Every finding says which rule fired, on which slice and class, and why, in words a reviewer can act on.
"""

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from cmrassist_server.qc.metrics import QC_CLASSES

RV, MYO, LV = 1, 2, 3
_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the rules.

    Args:
        min_enclosure: least fraction of the LV cavity's outline that must be myocardium (the published
            "in the LV" slice definition uses 50%).
        rv_contact_px: the RV must come within this many pixels of the myocardium.
        jump_ratio: a slice whose area is below ``1/jump_ratio`` of both neighbours' or above ``jump_ratio``
            times both is an implausible jump (a real stack changes monotonically or smoothly).
        min_piece_mm2: pieces smaller than this do not count as fragments (expert ACDC labels hold many
            1-3 pixel specks that change no measure).
    """

    min_enclosure: float = 0.5
    rv_contact_px: int = 2
    jump_ratio: float = 2.0
    min_piece_mm2: float = 10.0


@dataclass(frozen=True)
class Finding:
    """One rule that fired: ``slice`` is ``None`` for findings about the whole frame."""

    rule: str
    message: str
    slice: Optional[int] = None
    cls: Optional[str] = None
    value: Optional[float] = None

    def as_dict(self) -> Dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _extent(present: np.ndarray) -> Optional[range]:
    idx = np.flatnonzero(present)
    return range(int(idx[0]), int(idx[-1]) + 1) if len(idx) else None


def lv_enclosure(slice_label: np.ndarray) -> Optional[float]:
    """Fraction of the pixels just outside the LV cavity that are myocardium (``None`` without LV cavity)."""
    cavity = slice_label == LV
    if not cavity.any():
        return None
    ring = ndimage.binary_dilation(cavity, _CROSS) & ~cavity
    return float((slice_label[ring] == MYO).mean()) if ring.any() else 1.0


def check_rules(label: np.ndarray, settings: RuleSettings = RuleSettings(), *, pixel_mm2: float = 1.0) -> List[Finding]:
    """All rule findings of a ``(slices, rows, columns)`` label map (canonical: axis 0 is the slice axis).

    Args:
        label: the label map.
        settings: rule thresholds.
        pixel_mm2: in-plane pixel area, for the fragment size limit.
    """
    label = _around_heart(label)
    n = label.shape[0]
    areas = np.stack([(label == c).reshape(n, -1).sum(1) for c in range(4)], axis=1)
    findings = _frame_findings(areas)
    for i in range(n):
        findings += _slice_findings(label, areas, i, settings, pixel_mm2)
    return findings + _area_jumps(areas, settings.jump_ratio)


def _around_heart(label: np.ndarray, margin: int = 2) -> np.ndarray:
    """The label cut to its labelled pixels' in-plane box and ``margin`` pixels of background around it: every
    rule is local (dilations, components, holes), so its findings are the same, at a fraction of the pixels."""
    rows, cols = np.nonzero(label.any(axis=0))
    if rows.size == 0:
        return label
    r0, c0 = max(0, rows.min() - margin), max(0, cols.min() - margin)
    return label[:, r0 : rows.max() + margin + 1, c0 : cols.max() + margin + 1]


def _frame_findings(areas: np.ndarray) -> List[Finding]:
    """A class missing from the whole frame; a slice without LV inside the stack."""
    findings = [
        Finding("class_missing", f"no {QC_CLASSES[c]} anywhere in the frame", cls=QC_CLASSES[c])
        for c in (RV, MYO, LV)
        if areas[:, c].sum() == 0
    ]
    heart = _extent(areas[:, MYO] + areas[:, LV] > 0)
    for i in heart[1:-1] if heart is not None else []:
        if areas[i, MYO] + areas[i, LV] == 0:
            findings.append(
                Finding(
                    "missing_slice",
                    f"slice {i} has no LV although slices {heart[0]}-{heart[-1]} "
                    "around it do (a slice left out inside the stack)",
                    slice=i,
                )
            )
    return findings


def _slice_findings(
    label: np.ndarray, areas: np.ndarray, i: int, settings: RuleSettings, pixel_mm2: float
) -> List[Finding]:
    """What is wrong on slice ``i`` alone (and against its neighbours' LV cavity)."""
    s, n, out = label[i], label.shape[0], []
    if areas[i, LV] and not areas[i, MYO]:
        out.append(
            Finding(
                "class_missing_on_slice", f"slice {i}: LV cavity without any myocardium", slice=i, cls="lv_myocardium"
            )
        )
    if 0 < i < n - 1 and not areas[i, LV] and areas[i, MYO] and areas[i - 1, LV] and areas[i + 1, LV]:
        out.append(
            Finding(
                "class_missing_on_slice",
                f"slice {i}: no LV cavity although both neighbouring slices have one",
                slice=i,
                cls="lv_cavity",
            )
        )
    enclosure = lv_enclosure(s) if areas[i, MYO] else None
    if enclosure is not None and enclosure < settings.min_enclosure:
        out.append(
            Finding(
                "lv_not_enclosed",
                f"slice {i}: only {100 * enclosure:.0f}% of the LV cavity's outline is "
                f"myocardium (at least {100 * settings.min_enclosure:.0f}% expected)",
                slice=i,
                cls="lv_cavity",
                value=round(enclosure, 3),
            )
        )
    if areas[i, RV] and areas[i, MYO]:
        near_myo = ndimage.binary_dilation(s == MYO, _CROSS, iterations=settings.rv_contact_px)
        if not (near_myo & (s == RV)).any():
            out.append(
                Finding(
                    "rv_detached", f"slice {i}: the RV cavity does not touch the myocardium", slice=i, cls="rv_cavity"
                )
            )
    for c in (RV, MYO, LV):
        count = _pieces(s == c, settings.min_piece_mm2 / pixel_mm2) if areas[i, c] else 0
        if count > 1:
            out.append(
                Finding(
                    "fragmented",
                    f"slice {i}: {QC_CLASSES[c]} is in {count} separate pieces",
                    slice=i,
                    cls=QC_CLASSES[c],
                    value=float(count),
                )
            )
    return out


def _pieces(mask: np.ndarray, min_pixels: float) -> int:
    """Connected pieces of ``mask`` of at least ``min_pixels`` (1 when the mask is in one piece)."""
    pieces, n_pieces = ndimage.label(mask, _CROSS)
    return int((np.bincount(pieces.ravel())[1:] >= min_pixels).sum()) if n_pieces > 1 else 1


def _area_jumps(areas: np.ndarray, ratio: float) -> List[Finding]:
    """A class's area on a slice far outside the range of its two neighbours'."""
    findings = []
    for c in (RV, MYO, LV):
        a = areas[:, c].astype(float)
        for i in range(1, len(a) - 1):
            lo, hi = min(a[i - 1], a[i + 1]), max(a[i - 1], a[i + 1])
            if a[i] > 0 and lo > 0 and (a[i] * ratio < lo or a[i] > ratio * hi):
                change = "drops" if a[i] < lo else "jumps"
                findings.append(
                    Finding(
                        "area_jump",
                        f"slice {i}: {QC_CLASSES[c]} area {change} to {a[i]:.0f} px "
                        f"between neighbours of {a[i - 1]:.0f} and {a[i + 1]:.0f} px",
                        slice=i,
                        cls=QC_CLASSES[c],
                        value=float(a[i]),
                    )
                )
    return findings
