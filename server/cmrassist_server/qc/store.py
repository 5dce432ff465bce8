"""QC results per image, kept as one JSON file each beside the datastore.

A separate file per image (written atomically) rather than the datastore's own JSON: scoring runs in a
child process, and MONAI Label's local datastore would overwrite the child's changes with the server's
in-memory copy on its next write.
"""

import json
import os
from typing import Dict, Iterable, Iterator, Optional, Tuple

from cmrassist_server.core.checkpoints import atomic_write_json
from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML


class QCStore:
    """``<folder>/<image id>.json`` holding the latest QC report of that image and what it checked.

    Args:
        folder: where the results live (created when missing).
    """

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def _path(self, image_id: str) -> str:
        return os.path.join(self.folder, image_id + ".json")

    def save(self, image_id: str, result: Dict) -> None:
        atomic_write_json(self._path(image_id), result)

    def get(self, image_id: str) -> Optional[Dict]:
        try:
            with open(self._path(image_id)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def items(self) -> Iterator[Tuple[str, Dict]]:
        for name in sorted(os.listdir(self.folder)):
            if name.endswith(".json") and not name.startswith("."):
                result = self.get(name[: -len(".json")])
                if result is not None:
                    yield name[: -len(".json")], result


def _ef(edv: float, esv: float) -> Optional[float]:
    return round(100.0 * (edv - esv) / edv, 2) if edv > 0 else None


def cardiac_function(ed: Dict, es: Dict) -> Dict:
    """EDV, ESV, EF of both ventricles and LV mass (at ED), raw and QC-corrected, from two frame reports."""
    out = {}
    for kind in ("raw", "corrected"):
        v_ed, v_es = ed["volumes"][kind], es["volumes"][kind]
        out[kind] = {
            "lv_edv_ml": v_ed["lv_cavity_ml"],
            "lv_esv_ml": v_es["lv_cavity_ml"],
            "lv_ef_pct": _ef(v_ed["lv_cavity_ml"], v_es["lv_cavity_ml"]),
            "rv_edv_ml": v_ed["rv_cavity_ml"],
            "rv_esv_ml": v_es["rv_cavity_ml"],
            "rv_ef_pct": _ef(v_ed["rv_cavity_ml"], v_es["rv_cavity_ml"]),
            "lv_mass_g": round(v_ed["lv_myocardium_ml"] * MYOCARDIAL_DENSITY_G_PER_ML, 2),
        }
    return out


def sibling_phase(info: Dict) -> Optional[str]:
    phase = str(info.get("phase", "")).upper()
    return {"ED": "ES", "ES": "ED"}.get(phase)


def sibling_ids(image_id: str, info: Dict, infos: Iterator[Tuple[str, Dict]]) -> list:
    """Ids of the same subject's other phase (ED for ES and back), from ``(id, image info)`` pairs."""
    other = sibling_phase(info)
    subject = info.get("source_image") or info.get("patient")
    if not other or not subject:
        return []
    return [
        i
        for i, oinfo in infos
        if i != image_id
        and str(oinfo.get("phase", "")).upper() == other
        and (oinfo.get("source_image") or oinfo.get("patient")) == subject
    ]


def with_function(store: QCStore, report: Dict, siblings: Iterable[str]) -> Dict:
    """Add ``function`` (EF etc.) when a stored QC report of the same subject's other phase exists.

    Args:
        store: the per-image reports.
        report: this frame's report (with ``image_info``).
        siblings: ids of the subject's frames of the other phase (:func:`sibling_ids`).
    """
    results = [r for r in (store.get(i) for i in siblings) if r is not None and "volumes" in r]
    if not results:
        return report
    # Prefer the other phase checked on the same kind of label (final with final, prediction with prediction).
    result = sorted(results, key=lambda r: r.get("label") != report.get("label"))[0]
    other = sibling_phase(report.get("image_info") or {})
    ed, es = (report, result) if other == "ES" else (result, report)
    return {
        **report,
        "function": {
            "ed_image": ed.get("image"),
            "es_image": es.get("image"),
            "ed_label": ed.get("label"),
            "es_label": es.get("label"),
            **cardiac_function(ed, es),
        },
    }
