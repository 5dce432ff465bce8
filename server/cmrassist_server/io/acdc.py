"""Importer of the ACDC training layout (patientNNN/Info.cfg, _frameXX.nii.gz, _gt.nii.gz) into a studies folder.

Cite: O. Bernard et al., IEEE TMI 37(11):2514-2525, 2018, doi:10.1109/TMI.2018.2837502.
"""

import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.studies import StudiesWriter, label_info

PATIENT_DIR = re.compile(r"^patient(\d{3})$")


@dataclass(frozen=True)
class AcdcPatient:
    """One ACDC patient folder and its ``Info.cfg``."""

    folder: str
    name: str
    number: int
    info: Dict[str, str]

    @property
    def ed_frame(self) -> int:
        return int(self.info["ED"])

    @property
    def es_frame(self) -> int:
        return int(self.info["ES"])

    def frame_path(self, frame: int, gt: bool = False) -> str:
        return os.path.join(self.folder, f"{self.name}_frame{frame:02d}{'_gt' if gt else ''}.nii.gz")

    @property
    def cine_path(self) -> str:
        return os.path.join(self.folder, f"{self.name}_4d.nii.gz")

    def image_info(self, phase: str, frame: Optional[int]) -> Dict:
        info = {
            "patient": self.name,
            "phase": phase,
            "group": self.info.get("Group", ""),
            "ed_frame": self.ed_frame,
            "es_frame": self.es_frame,
            "source": "ACDC",
        }
        for key, cast in (("Height", float), ("Weight", float), ("NbFrame", int)):
            if key in self.info:
                info[{"Height": "height_cm", "Weight": "weight_kg", "NbFrame": "n_frames"}[key]] = cast(self.info[key])
        if frame is not None:
            info["frame"] = frame
        return info


def read_info_cfg(path: str) -> Dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            if ":" in line:
                key, value = line.split(":", 1)
                out[key.strip()] = value.strip()
    return out


def parse_patient_range(text: Optional[str]) -> Optional[set]:
    """``"1-80"`` or ``"1-5,90"`` -> a set of patient numbers; ``None`` means all."""
    if not text:
        return None
    numbers: set = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad patient range {part!r}; use e.g. 1-80 or 1-5,90")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad patient range {part!r}: end before start")
        numbers.update(range(lo, hi + 1))
    return numbers


def find_patients(root: str, patients: Optional[set] = None) -> List[AcdcPatient]:
    """The ACDC patient folders under ``root``; refuses a folder that is not in ACDC layout."""
    if not os.path.isdir(root):
        raise CMRAssistError(f"{root} is not a folder")
    found = []
    for entry in sorted(os.listdir(root)):
        m = PATIENT_DIR.match(entry)
        folder = os.path.join(root, entry)
        if not m or not os.path.isdir(folder):
            continue
        number = int(m.group(1))
        if patients is not None and number not in patients:
            continue
        cfg = os.path.join(folder, "Info.cfg")
        if not os.path.isfile(cfg):
            raise CMRAssistError(f"{folder} has no Info.cfg: not ACDC layout")
        info = read_info_cfg(cfg)
        if "ED" not in info or "ES" not in info:
            raise CMRAssistError(f"{cfg} lacks ED/ES frame numbers: not ACDC layout")
        found.append(AcdcPatient(folder=folder, name=entry, number=number, info=info))
    if not found:
        hint = "" if patients is None else " in the requested patient range"
        raise CMRAssistError(
            f"{root} holds no ACDC patient folders{hint} (expected patientNNN/ with Info.cfg and "
            "patientNNN_frameXX[_gt].nii.gz files)"
        )
    return found


def _remap(label: sitk.Image, mapping: Optional[Dict[int, int]]) -> sitk.Image:
    if not mapping:
        return label
    array = sitk.GetArrayFromImage(label)
    out = np.zeros_like(array, dtype=np.uint8)
    for src, dst in mapping.items():
        out[array == src] = dst
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(label)
    return img


def import_acdc(
    src: str,
    dst: str,
    *,
    patients: Optional[str] = None,
    label_map: Optional[Dict[int, int]] = None,
    with_cine: bool = True,
    annotator: str = "ACDC expert",
    progress: Optional[Callable] = None,
) -> Dict:
    """Write ED and ES frames (and any 4D cine) of the chosen patients with expert ``final`` labels to ``dst``.

    Args:
        src: the ACDC ``training`` (or ``testing``) folder.
        dst: the MONAI Label studies folder to write.
        patients: patient numbers such as ``"1-80"``; all when omitted.
        label_map: ``{source_value: our_value}`` for label files in another convention.
        with_cine: also import ``patientNNN_4d.nii.gz`` where present.
        annotator: name recorded as the labels' annotator.
        progress: ``progress(done, total)`` callback.

    Returns:
        counts of patients, images and labels written.
    """
    found = find_patients(src, parse_patient_range(patients))
    writer = StudiesWriter(dst)
    images = labels = 0
    for i, p in enumerate(found):
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            path = p.frame_path(frame)
            if not os.path.isfile(path):
                raise CMRAssistError(f"{path} is missing (Info.cfg names frame {frame} as {phase})")
            image_id = f"{p.name}_{phase.lower()}"
            writer.add_image(image_id, path, p.image_info(phase, frame))
            images += 1
            gt = p.frame_path(frame, gt=True)
            if os.path.isfile(gt):
                info = label_info(annotator, "expert", source="ACDC")
                writer.add_label(image_id, _remap(sitk.ReadImage(gt), label_map) if label_map else gt, info)
                labels += 1
        if with_cine and os.path.isfile(p.cine_path):
            writer.add_image(f"{p.name}_cine", p.cine_path, p.image_info("CINE", None))
            images += 1
        if progress:
            progress(i + 1, len(found))
    return {"patients": len(found), "images": images, "labels": labels}


def acdc_items(root: str, patients: Sequence[int]) -> List[Dict]:
    """Labelled ED/ES frames of ACDC patients as training items (used by benchmarks)."""
    items = []
    for p in find_patients(root, set(patients)):
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            items.append(
                {
                    "image": p.frame_path(frame),
                    "label": p.frame_path(frame, gt=True),
                    "subject": p.name,
                    "group": p.info.get("Group", ""),
                    "phase": phase,
                }
            )
    return items
