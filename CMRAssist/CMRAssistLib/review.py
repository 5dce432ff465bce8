"""What the Review panel shows, computed from a QC report without any GUI: slice rows and measures rows.

The report is the JSON of ``POST /infer/qc`` (schema: ``docs/qc-report.schema.json``).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: Columns of the slice table, in label-value order of the classes they show.
CLASS_COLUMNS: Tuple[Tuple[str, str], ...] = (("rv_cavity", "RV"), ("lv_myocardium", "MYO"), ("lv_cavity", "LV"))
#: Traffic-light colours (RGB 0-255): under the threshold, within 0.15 above it, comfortably above.
BAD, DOUBTFUL, GOOD, UNKNOWN = (230, 120, 110), (240, 200, 110), (150, 210, 150), (225, 225, 225)


@dataclass
class SliceRow:
    """One slice of the QC table."""

    slice: int
    center_lps: Sequence[float]
    dice: Dict[str, Optional[float]]
    flagged: Dict[str, bool]
    reasons: List[str] = field(default_factory=list)
    rule_findings: int = 0
    #: ``too_basal``, ``in_lv`` or ``too_apical`` from the slice-position classifier; None when unknown.
    position: Optional[str] = None

    @property
    def outside_lv(self) -> bool:
        return self.position in ("too_basal", "too_apical")

    @property
    def any_flagged(self) -> bool:
        return any(self.flagged.values())

    @property
    def worst(self) -> float:
        known = [d for d in self.dice.values() if d is not None]
        return min(known) if known else 1.0


def slice_rows(report: Dict[str, Any], positions: Optional[Dict[str, Any]] = None) -> List[SliceRow]:
    """Flagged slices first (those breaking a rule, then by worst predicted Dice), then the rest in stack order.

    With ``positions`` (the ``slice_position`` infer JSON of the same frame), slices outside the LV come after
    every in-LV slice: a poor segmentation above the base or beyond the apex matters least.
    """
    where = {int(s["slice"]): s.get("position") for s in (positions or {}).get("slices", [])}
    rows = []
    for s in report.get("slices", []):
        classes = s.get("classes", {})
        rows.append(
            SliceRow(
                slice=int(s["slice"]),
                center_lps=s.get("center_lps", (0, 0, 0)),
                dice={name: classes.get(name, {}).get("dice") for name, _ in CLASS_COLUMNS},
                flagged={name: bool(classes.get(name, {}).get("flagged")) for name, _ in CLASS_COLUMNS},
                reasons=list(s.get("reasons", [])),
                rule_findings=len(s.get("rules", [])),
                position=where.get(int(s["slice"])),
            )
        )
    # Rule findings are certain, a predicted Dice is an estimate: slices breaking rules come first.
    flagged = sorted((r for r in rows if r.any_flagged), key=lambda r: (r.rule_findings == 0, r.worst, r.slice))
    ordered = flagged + [r for r in rows if not r.any_flagged]
    return [r for r in ordered if not r.outside_lv] + [r for r in ordered if r.outside_lv]


def position_text(positions: Optional[Dict[str, Any]]) -> str:
    """One line: which slices the classifier puts in the LV (empty when positions are unknown)."""
    if not positions or not positions.get("slices"):
        return ""
    in_lv = positions.get("in_lv", {})
    n = len(positions["slices"])
    if not in_lv.get("count"):
        return f"Slice position: no slice of {n} looks like it is in the LV."
    outside = n - int(in_lv["count"])
    return (
        f"Slice position: slices {in_lv['first']}-{in_lv['last']} of 0-{n - 1} in the LV"
        + (f"; {outside} outside it" if outside else "")
        + "."
    )


def dice_colour(dice: Optional[float], threshold: float, flagged: bool) -> Tuple[int, int, int]:
    """Cell colour: red under the threshold (or flagged by a rule), amber just above it, green above that."""
    if flagged:
        return BAD
    if dice is None:
        return UNKNOWN
    return BAD if dice < threshold else DOUBTFUL if dice < threshold + 0.15 else GOOD


MEASURES: Tuple[Tuple[str, str, str], ...] = (
    ("LV EDV (ml)", "lv_edv_ml", "ED"),
    ("LV ESV (ml)", "lv_esv_ml", "ES"),
    ("LV EF (%)", "lv_ef_pct", ""),
    ("RV EDV (ml)", "rv_edv_ml", "ED"),
    ("RV ESV (ml)", "rv_esv_ml", "ES"),
    ("RV EF (%)", "rv_ef_pct", ""),
    ("LV mass (g)", "lv_mass_g", "ED"),
)


def measure_rows(report: Dict[str, Any]) -> List[Tuple[str, Optional[float], Optional[float]]]:
    """``(measure, raw, QC-corrected)`` rows; values not known from this report (and its ED/ES pair) are None.

    With both phases checked the server's ``function`` gives everything; with one frame only its own volumes
    fill the rows of its phase (a frame of unknown phase fills nothing but its volumes in the summary).
    """
    function = report.get("function")
    if function:
        return [(name, function["raw"].get(key), function["corrected"].get(key)) for name, key, _ in MEASURES]
    phase = str((report.get("image_info") or {}).get("phase", "")).upper()
    volumes = report.get("volumes", {})
    frame = {
        "lv_edv_ml": "lv_cavity_ml",
        "lv_esv_ml": "lv_cavity_ml",
        "rv_edv_ml": "rv_cavity_ml",
        "rv_esv_ml": "rv_cavity_ml",
        "lv_mass_g": "lv_mass_g",
    }
    rows = []
    for name, key, needs in MEASURES:
        known = needs and needs == phase and key in frame
        rows.append(
            (
                name,
                volumes.get("raw", {}).get(frame[key]) if known else None,
                volumes.get("corrected", {}).get(frame[key]) if known else None,
            )
        )
    return rows


def summary_text(report: Dict[str, Any]) -> str:
    """Two lines: what was checked and the rebuilt 3D Dice (or that only rules ran), then what is flagged."""
    what = "the model's prediction" if report.get("label") == "prediction" else f"label '{report.get('label')}'"
    dice = report.get("dice_3d")
    if dice:
        quality = "predicted 3D Dice " + ", ".join(f"{short} {dice[name]:.2f}" for name, short in CLASS_COLUMNS)
    else:
        quality = "no QC model trained yet: rule checks only"
    flagged = report.get("summary", {}).get("flagged_slices", [])
    frame_rules = [f["message"] for f in report.get("frame_rules", [])]
    line2 = f"{len(flagged)} of {report.get('summary', {}).get('slices', 0)} slices flagged" + (
        ": " + "; ".join(frame_rules) if frame_rules else ""
    )
    return f"{report.get('image')}: {what}, {quality}.\n{line2}."
