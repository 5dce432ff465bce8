"""Simulated non-expert labels from expert ones, for benchmarks (never for training served models by default).

Errors seen in non-expert cardiac labels: a systematic boundary bias (contours drawn a little inside or outside
the true edge), boundary jitter, the RV and the myocardium worst (thin, low-contrast structures), and basal and
apical slices dropped or over-included. ``severity`` scales all of them: ``well_trained`` is a non-expert after a
proper training course, ``brief`` one after a short introduction.
"""

from dataclasses import dataclass
from typing import Dict

import numpy as np
from scipy import ndimage

RV, MYO, LV = 1, 2, 3


@dataclass(frozen=True)
class NonExpertProfile:
    """How wrong a simulated non-expert is.

    Args:
        bias_px: per-class systematic boundary shift in pixels (+ outward), drawn once per annotator and frame
            with this standard deviation.
        jitter_px: per-slice random boundary shift (standard deviation, pixels).
        ragged: probability per boundary pixel of being flipped (ragged contours).
        drop_basal: probability that the most basal labelled slice is left out.
        drop_apical: probability that the most apical labelled slice is left out.
        extra_basal: probability that the slice above the base gets the basal slice's label (over-inclusion).
        rv_myo_factor: how much worse the RV and the myocardium are than the LV cavity.
    """

    bias_px: float
    jitter_px: float
    ragged: float
    drop_basal: float
    drop_apical: float
    extra_basal: float
    rv_myo_factor: float = 2.0


PROFILES: Dict[str, NonExpertProfile] = {
    "well_trained": NonExpertProfile(
        bias_px=0.5, jitter_px=0.5, ragged=0.05, drop_basal=0.15, drop_apical=0.15, extra_basal=0.1
    ),
    "brief": NonExpertProfile(
        bias_px=1.2, jitter_px=1.0, ragged=0.15, drop_basal=0.4, drop_apical=0.4, extra_basal=0.3
    ),
}


def _shift(mask: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    """Move a 2D mask's boundary by ``pixels`` (fractions by chance: 0.4 px = 1 px with probability 0.4)."""
    steps = int(np.floor(abs(pixels))) + int(rng.random() < abs(pixels) % 1)
    if steps == 0 or not mask.any():
        return mask
    return (
        ndimage.binary_dilation(mask, iterations=steps)
        if pixels > 0
        else ndimage.binary_erosion(mask, iterations=steps)
    )


def simulate_nonexpert(label: np.ndarray, severity: str, rng: np.random.Generator) -> np.ndarray:
    """A non-expert's version of a canonical ``(slices, H, W)`` expert label (0 BG, 1 RV, 2 MYO, 3 LV).

    Args:
        label: the expert label.
        severity: a key of :data:`PROFILES`.
        rng: random generator (one per simulated annotator and frame).
    """
    if severity not in PROFILES:
        raise ValueError(f"severity must be one of {sorted(PROFILES)}, not {severity!r}")
    p = PROFILES[severity]
    out = np.zeros_like(label)
    factor = {RV: p.rv_myo_factor, MYO: p.rv_myo_factor, LV: 1.0}
    bias = {c: rng.normal(0, p.bias_px * factor[c]) for c in (RV, MYO, LV)}
    for k in range(label.shape[0]):
        # The LV blood pool and epicardium move; the myocardium is what lies between them.
        epi = _shift((label[k] == MYO) | (label[k] == LV), bias[MYO] + rng.normal(0, p.jitter_px * factor[MYO]), rng)
        cavity = _shift(label[k] == LV, bias[LV] + rng.normal(0, p.jitter_px), rng)
        rv = _shift(label[k] == RV, bias[RV] + rng.normal(0, p.jitter_px * factor[RV]), rng)
        out[k][rv] = RV
        out[k][epi] = MYO
        out[k][cavity & epi] = LV
        if p.ragged:
            edge = out[k] != ndimage.grey_erosion(out[k], size=3)
            flip = edge & (rng.random(edge.shape) < p.ragged)
            out[k][flip] = ndimage.grey_dilation(out[k], size=3)[flip]
    labelled = np.flatnonzero(label.reshape(label.shape[0], -1).any(1))
    if len(labelled) >= 3:
        base, apex = _base_and_apex(label, labelled)
        if rng.random() < p.drop_basal:
            out[base] = 0
        if rng.random() < p.drop_apical:
            out[apex] = 0
        above = base - 1 if base < apex else base + 1
        if 0 <= above < label.shape[0] and not label[above].any() and rng.random() < p.extra_basal:
            out[above] = out[base] if out[base].any() else label[base]
    return out


def _base_and_apex(label: np.ndarray, labelled: np.ndarray):
    """Indices of the most basal and most apical labelled slices (the base has the larger LV blood pool)."""
    first, last = int(labelled[0]), int(labelled[-1])
    return (first, last) if (label[first] == LV).sum() >= (label[last] == LV).sum() else (last, first)
