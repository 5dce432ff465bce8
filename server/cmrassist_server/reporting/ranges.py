"""Normal ranges of the report's measures: sex-specific mean +- 2 SD of healthy adults, SSFP cine.

The LV references count papillary muscles with the LV mass; the segmentation (ACDC's convention) counts them with
the cavity, so against these ranges LV volumes read slightly high and LV mass slightly low.

Sources (transcribed from the papers' tables; check them against your own centre's ranges):
- LV: Kawel-Boehm N, Maceira A, Valsangiacomo-Buechel ER, et al. Normal values for cardiovascular magnetic
  resonance in adults and children. J Cardiovasc Magn Reson 2015;17:29 (pooled SSFP values).
- RV: Hudsmith LE, Petersen SE, Francis JM, Robson MD, Neubauer S. Normal human left and right ventricular and left
  atrial dimensions using steady state free precession magnetic resonance imaging. J Cardiovasc Magn Reson
  2005;7:775-782.
"""

from typing import Dict, List, Optional, Tuple

KAWEL_BOEHM_2015 = "Kawel-Boehm et al., J Cardiovasc Magn Reson 2015;17:29"
HUDSMITH_2005 = "Hudsmith et al., J Cardiovasc Magn Reson 2005;7:775-782"

#: measure -> (men mean, men SD, women mean, women SD, source)
REFERENCE: Dict[str, Tuple[float, float, float, float, str]] = {
    "lv_edv_ml": (160.0, 27.0, 132.0, 23.0, KAWEL_BOEHM_2015),
    "lv_esv_ml": (54.0, 14.0, 44.0, 11.0, KAWEL_BOEHM_2015),
    "lv_sv_ml": (108.0, 18.0, 87.0, 15.0, KAWEL_BOEHM_2015),
    "lv_ef_pct": (67.0, 5.0, 67.0, 5.0, KAWEL_BOEHM_2015),
    "lv_mass_g": (134.0, 21.0, 98.0, 21.0, KAWEL_BOEHM_2015),
    "lv_edv_ml_m2": (81.0, 12.0, 76.0, 10.0, KAWEL_BOEHM_2015),
    "lv_esv_ml_m2": (26.0, 6.0, 24.0, 5.0, KAWEL_BOEHM_2015),
    "rv_edv_ml": (190.0, 33.0, 148.0, 35.0, HUDSMITH_2005),
    "rv_esv_ml": (78.0, 20.0, 56.0, 18.0, HUDSMITH_2005),
}


def normal_range(measure: str, sex: Optional[str]) -> Optional[Dict[str, object]]:
    """Lower and upper limit for ``measure`` and ``sex`` (``M``/``F``); both sexes' widest limits when unknown."""
    if measure not in REFERENCE:
        return None
    m_mean, m_sd, f_mean, f_sd, source = REFERENCE[measure]
    limits = {"M": (m_mean - 2 * m_sd, m_mean + 2 * m_sd), "F": (f_mean - 2 * f_sd, f_mean + 2 * f_sd)}
    sex = (sex or "").upper()[:1]
    if sex in limits:
        low, high = limits[sex]
    else:
        low, high = min(v[0] for v in limits.values()), max(v[1] for v in limits.values())
    return {"low": round(low, 1), "high": round(high, 1), "sex": sex if sex in limits else "either", "source": source}


def against_ranges(values: Dict[str, Optional[float]], sex: Optional[str]) -> List[Dict[str, object]]:
    """Each measure with its range and ``low``/``normal``/``high`` (``no range`` where none is known)."""
    rows = []
    for measure, value in values.items():
        limits = normal_range(measure, sex)
        row: Dict[str, object] = {"measure": measure, "value": value}
        if limits is None or value is None:
            row["status"] = "no range" if limits is None else "not measured"
        else:
            row.update(limits)
            row["status"] = "low" if value < limits["low"] else "high" if value > limits["high"] else "normal"
        rows.append(row)
    return rows
