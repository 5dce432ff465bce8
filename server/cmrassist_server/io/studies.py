"""Writing MONAI Label studies folders (local datastore layout) from phantoms or imported data."""

import os
import tempfile
from typing import Dict, List, Optional

import SimpleITK as sitk
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.datastore import Datastore


class StudiesWriter:
    """Adds images and ``final`` labels to a MONAI Label local datastore folder.

    Args:
        folder: the studies folder (created when missing).
    """

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.datastore = LocalDatastore(folder, extensions=("*.nii.gz", "*.nii"), auto_reload=False)

    def _staged(self, image: sitk.Image, name: str) -> str:
        path = os.path.join(tempfile.mkdtemp(prefix="cmrassist-"), name + ".nii.gz")
        sitk.WriteImage(image, path, useCompression=True)
        return path

    def add_image(self, image_id: str, image, info: Dict) -> str:
        """Add an image (a path or a SimpleITK image) with its info; returns the id."""
        path = image if isinstance(image, str) else self._staged(image, image_id)
        try:
            return self.datastore.add_image(image_id, path, dict(info))
        finally:
            if not isinstance(image, str):
                os.remove(path)

    def add_label(self, image_id: str, label, info: Dict, tag: str = "final") -> str:
        """Add a label (a path or a SimpleITK image) for ``image_id`` under ``tag``."""
        path = label if isinstance(label, str) else self._staged(label, image_id)
        try:
            return self.datastore.save_label(image_id, path, tag, dict(info))
        finally:
            if not isinstance(label, str):
                os.remove(path)

    def has_image(self, image_id: str) -> bool:
        return image_id in self.datastore.list_images()


def label_info(annotator: str, expertise: str, **extra) -> Dict:
    """Provenance recorded with every label."""
    import time

    return {"annotator": annotator, "expertise": expertise, "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}


def phantom_studies(
    folder: str,
    n: int,
    seed: int,
    *,
    labelled_fraction: float = 1.0,
    with_cine: bool = False,
    apical_margin_slices: int = 0,
    n_frames: int = 12,
    progress: Optional[callable] = None,
) -> int:
    """Write ``n`` phantom subjects (ED and ES frames, optionally the cine) to a studies folder.

    Labels go to the first ``round(n * labelled_fraction)`` subjects; ``apical_margin_slices`` extends every
    stack beyond the apex; cines have ``n_frames`` frames. Returns the number of images written.
    """
    from cmrassist_server.io.phantoms import make_phantom

    writer = StudiesWriter(folder)
    n_labelled = int(round(n * labelled_fraction))
    count = 0
    for i in range(n):
        p = make_phantom(seed + i, with_cine=with_cine, apical_margin_slices=apical_margin_slices, n_frames=n_frames)
        for phase, image, label, frame in (
            ("ED", p.ed_image, p.ed_label, 1),
            ("ES", p.es_image, p.es_label, p.anatomy.es_frame + 1),
        ):
            image_id = f"{p.name}_{phase.lower()}"
            writer.add_image(image_id, image, {**p.info, "phase": phase, "frame": frame})
            if i < n_labelled:
                writer.add_label(image_id, label, label_info("phantom-generator", "expert", source="synthetic"))
            count += 1
        if p.cine is not None:
            writer.add_image(f"{p.name}_cine", p.cine, {**p.info, "phase": "CINE"})
            count += 1
        if progress:
            progress(i + 1, n)
    return count


def training_items(datastore: Datastore) -> List[Dict]:
    """Frames with ``final`` labels, with subject and group so that splits keep a subject's ED and ES together."""
    items = []
    for entry in datastore.datalist():
        image_id = os.path.basename(entry["image"]).split(".")[0]
        info = datastore.get_image_info(image_id) or {}
        items.append(
            {
                "image": entry["image"],
                "label": entry["label"],
                "subject": info.get("patient", image_id),
                "group": info.get("group", ""),
            }
        )
    return items
