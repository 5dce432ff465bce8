"""The output folder of a cohort run, and how each file in it appears atomically.

```
<out>/subjects/<subject>.json        one per analysed subject: its row, frames, curve, checks, QC reports, timings
                                     (written last: its presence with the current stamp is what "done" means)
<out>/failed/<subject>.json          why a subject could not be analysed (with the stamp it failed on)
<out>/labels/<subject>/<name>.nii.gz one label per frame (<cine>_frameNN, or the 3D study's id)
<out>/subjects.parquet, subjects.csv one row per subject; review_queue.csv; run.json (+ runs/<run id>.json)
```

Every file is written to a ``partial-`` file in its folder and renamed over the final name, so a reader (or a
resumed run) sees the old file or the new one, never half of one; partial files of a killed run are removed.
"""

import json
import os
from typing import Any, Dict, Iterator, Optional

import numpy as np
import SimpleITK as sitk

from cmrassist_server.core.checkpoints import PARTIAL_PREFIX, atomic_write, atomic_write_json
from cmrassist_server.imaging.imageio import write_label_like

SCHEMA_VERSION = 1


def remove_partials(folder: str) -> int:
    """Remove the ``partial-`` files a killed writer left in ``folder``; returns how many."""
    removed = 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(PARTIAL_PREFIX):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class CohortOutput:
    """Paths and atomic writers of one output folder.

    Args:
        out: the output folder (created when missing).
    """

    def __init__(self, out: str):
        self.out = os.path.abspath(out)
        for sub in ("subjects", "failed", "labels", "runs"):
            os.makedirs(os.path.join(self.out, sub), exist_ok=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    def subject_path(self, subject_id: str) -> str:
        return self.path("subjects", subject_id + ".json")

    def failed_path(self, subject_id: str) -> str:
        return self.path("failed", subject_id + ".json")

    def label_path(self, subject_id: str, name: str) -> str:
        return self.path("labels", subject_id, name + ".nii.gz")

    def clean(self) -> int:
        """Partial files of a killed run in the top folders (a subject's label folder is cleaned when redone)."""
        return sum(remove_partials(self.path(sub)) for sub in ("", "subjects", "failed", "runs"))

    def state(self, subject_id: str, stamp: Dict[str, Any]) -> Optional[str]:
        """``done`` or ``failed`` when a record made from the same inputs exists, else ``None`` (to do)."""
        for state, path in (("done", self.subject_path(subject_id)), ("failed", self.failed_path(subject_id))):
            record = read_json(path)
            if record is not None and record.get("stamp") == stamp:
                return state
        return None

    def write_label(self, subject_id: str, name: str, label: np.ndarray, reference: sitk.Image) -> str:
        """Write one frame's label (atomically); returns its path relative to the output folder."""
        path = self.label_path(subject_id, name)
        atomic_write(path, lambda tmp: write_label_like(label, reference, tmp))
        return os.path.relpath(path, self.out)

    def start_subject(self, subject_id: str) -> None:
        """Before a subject is (re)analysed: its label folder loses any partial files."""
        remove_partials(self.path("labels", subject_id))

    def write_subject(self, record: Dict[str, Any]) -> None:
        """The subject's record (written after its labels: it marks the subject done); an old failure goes."""
        atomic_write_json(self.subject_path(record["subject"]), {"schema_version": SCHEMA_VERSION, **record})
        if os.path.exists(self.failed_path(record["subject"])):
            os.remove(self.failed_path(record["subject"]))

    def write_failure(self, subject_id: str, stamp: Dict[str, Any], reason: str, images) -> None:
        """Why a subject failed; a record of earlier inputs that did succeed no longer stands."""
        record = {
            "schema_version": SCHEMA_VERSION,
            "subject": subject_id,
            "stamp": stamp,
            "reason": reason,
            "images": list(images),
        }
        atomic_write_json(self.failed_path(subject_id), record)
        if os.path.exists(self.subject_path(subject_id)):
            os.remove(self.subject_path(subject_id))

    def records(self, stamps: Dict[str, Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        """The current record (done or failed, made from the same inputs) of each subject, in the order given."""
        for subject_id, stamp in stamps.items():
            for path in (self.subject_path(subject_id), self.failed_path(subject_id)):
                record = read_json(path)
                if record is not None and record.get("stamp") == stamp:
                    yield record
                    break
