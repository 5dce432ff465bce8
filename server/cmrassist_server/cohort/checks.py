"""Analysis-level checks of one subject: what must hold between its frames, whatever each frame's QC says.

- ``volume_curve``: the LV volume-time curve of a whole cine has one minimum (one ejection, one filling);
- ``ed_es_timing``: ED and ES (from the image info) are where the curve has its maximum and minimum;
- ``stroke_volumes``: LV and RV stroke volumes agree, as they must without a shunt or regurgitation;
- ``mass_ed_es``: LV myocardial mass at ED and at ES agree (the myocardium does not change volume).

Each check is ``{check, passed, value, tolerance, message}``; ``passed`` is ``None`` where it cannot be judged
(no whole cine, ED/ES found from the curve itself).
"""

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence


@dataclass(frozen=True)
class CheckSettings:
    """Tolerances of the subject checks.

    Args:
        dip_fraction: a dip of the LV curve counts as a minimum when the curve falls and rises again by at least
            this share of its range (smaller wiggles are noise).
        frame_tolerance: frames ED and ES may lie from the curve's maximum and minimum (cyclic).
        sv_ml: stroke volumes agree when they differ by at most this many ml ...
        sv_fraction: ... or this share of their mean, whichever is larger.
        mass_g: ED and ES mass agree within this many grams ...
        mass_fraction: ... or this share of their mean, whichever is larger.

    The defaults let ACDC's expert labels through for 17 of 20 normal subjects on each agreement check (labels
    drawn on short-axis stacks differ at the base between ED and ES); see ``docs/scaling.md``.
    """

    dip_fraction: float = 0.1
    frame_tolerance: int = 1
    sv_ml: float = 20.0
    sv_fraction: float = 0.25
    mass_g: float = 20.0
    mass_fraction: float = 0.25

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def _check(name: str, passed: Optional[bool], value, tolerance, message: str) -> Dict:
    return {"check": name, "passed": passed, "value": value, "tolerance": tolerance, "message": message}


def count_minima(curve: Sequence[float], depth: float) -> int:
    """Minima of a cyclic curve deeper than ``depth`` on both sides (hysteresis walk from the global maximum)."""
    values = list(curve)
    if not values:
        return 0
    start = values.index(max(values))
    walk = values[start:] + values[:start] + [values[start]]
    count, falling, last_max, extreme = 0, True, walk[0], walk[0]
    for x in walk[1:]:
        if falling:
            if x < extreme:
                extreme = x
            elif x - extreme >= depth:
                count += last_max - extreme >= depth
                falling, extreme = False, x
        elif x > extreme:
            extreme = x
        elif extreme - x >= depth:
            falling, last_max, extreme = True, extreme, x
    return count


def _cyclic_distance(a: int, b: int, n: int) -> int:
    d = abs(a - b) % n
    return min(d, n - d)


def curve_checks(lv_ml: Sequence[float], ed_index: int, es_index: int, from_info: bool, s: CheckSettings) -> List:
    """``volume_curve`` and ``ed_es_timing`` of a whole cine's LV curve (indices into the curve)."""
    n = len(lv_ml)
    span = max(lv_ml) - min(lv_ml)
    depth = max(s.dip_fraction * span, 1e-6)
    minima = count_minima(lv_ml, depth) if span > 0 else 0
    out = [
        _check(
            "volume_curve",
            minima == 1,
            minima,
            1,
            f"LV volume curve has {minima} minima deeper than {depth:.1f} ml (one expected)",
        )
    ]
    if not from_info:
        out.append(_check("ed_es_timing", None, None, s.frame_tolerance, "ED and ES taken from the curve itself"))
        return out
    at_max = int(max(range(n), key=lambda i: lv_ml[i]))
    at_min = int(min(range(n), key=lambda i: lv_ml[i]))
    off = max(_cyclic_distance(at_max, ed_index, n), _cyclic_distance(at_min, es_index, n))
    out.append(
        _check(
            "ed_es_timing",
            off <= s.frame_tolerance,
            off,
            s.frame_tolerance,
            f"curve maximum at frame {at_max + 1}, minimum at frame {at_min + 1}; "
            f"ED {ed_index + 1}, ES {es_index + 1} from the image info",
        )
    )
    return out


def _agreement(name: str, a: Optional[float], b: Optional[float], absolute: float, fraction: float, what: str):
    if a is None or b is None:
        return _check(name, None, None, None, f"{what}: not measurable")
    tolerance = max(absolute, fraction * abs(a + b) / 2)
    diff = abs(a - b)
    return _check(
        name,
        diff <= tolerance,
        round(diff, 3),
        round(tolerance, 3),
        f"{what} differ by {diff:.1f} (tolerance {tolerance:.1f})",
    )


def function_checks(function: Dict[str, Optional[float]], s: CheckSettings) -> List[Dict]:
    """``stroke_volumes`` and ``mass_ed_es`` from the raw measures."""
    return [
        _agreement(
            "stroke_volumes",
            function.get("lv_sv_ml"),
            function.get("rv_sv_ml"),
            s.sv_ml,
            s.sv_fraction,
            "LV and RV stroke volumes (ml)",
        ),
        _agreement(
            "mass_ed_es",
            function.get("lv_mass_g"),
            function.get("lv_mass_es_g"),
            s.mass_g,
            s.mass_fraction,
            "LV mass at ED and ES (g)",
        ),
    ]


def failed_checks(checks: List[Dict]) -> List[str]:
    return [c["check"] for c in checks if c["passed"] is False]
