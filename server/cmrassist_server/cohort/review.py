"""The review queue: subjects ordered by review priority, as a CSV in the output folder and as entries of the
server's QC report store (``<studies>/.cmrassist/qc/<image>.json``), which its ``qc`` strategy serves worst first.

A subject's entry goes under the study the queue points at (the worse of its ED and ES studies, else its cine or
3D study): the QC report of that frame, with the subject's priority as ``summary.review_priority`` (the frame's own
is kept as ``summary.frame_review_priority``) and the subject's findings under ``cohort``. A stored report of a
label people made (``final``, a version) is never replaced: it says more than a prediction's.
"""

import csv
import os
from typing import Any, Dict, List, Optional

from cmrassist_server.core.checkpoints import atomic_write
from cmrassist_server.qc.store import QCStore

QUEUE_COLUMNS = ("rank", "subject", "review_priority", "review_image", "review_frame", "checks_failed")


def store_folder(studies: str) -> Optional[str]:
    """The QC report store of a local studies folder the server serves (``None`` when it cannot be written)."""
    folder = os.path.join(studies, ".cmrassist", "qc")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def file_stamp(path: Optional[str]) -> Optional[float]:
    return os.path.getmtime(path) if path and os.path.isfile(path) else None


def store_entry(record: Dict[str, Any], run_id: str, stamp: Dict[str, Any]) -> Dict[str, Any]:
    """The QC store entry of an analysed subject's record.

    Args:
        record: the subject's record.
        run_id: the run.
        stamp: what the entry depends on, as the ``qc`` infer task and scoring stamp their reports (modification
            times of the image, the segmentation model and the QC model): the server's scoring keeps an entry made
            with its served models and replaces one made with others.
    """
    report = dict(record["qc"]["review"])
    review = record["review"]
    summary = dict(report["summary"])
    summary["frame_review_priority"] = summary["review_priority"]
    summary["review_priority"] = review["priority"]
    return {
        **report,
        "image": review["image"],
        "summary": summary,
        "stamp": stamp,
        "cohort": {
            "run": run_id,
            "subject": record["subject"],
            "frame": review["frame"],
            "failed_checks": review["failed_checks"],
            "checks": record["checks"],
        },
    }


def save_to_store(folder: str, record: Dict[str, Any], run_id: str, images: Dict[str, str], models) -> bool:
    """Put the subject's entry in the store unless a report of a people-made label is there; True if written.

    Args:
        folder: the QC report store.
        record: the subject's record.
        run_id: the run.
        images: image path by id (the subject's images).
        models: the served model files the run used (``ModelFiles``).
    """
    store = QCStore(folder)
    image_id = record["review"]["image"]
    previous = store.get(image_id)
    if previous is not None and previous.get("label") not in (None, "prediction"):
        return False
    stamp = {
        "image": file_stamp(images.get(image_id)),
        "label": file_stamp(models.segmentation),
        "qc_model": file_stamp(models.qc),
    }
    store.save(image_id, store_entry(record, run_id, stamp))
    return True


def queue_rows(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Analysed subjects, most in need of review first (ties: smaller id), ranked from 1."""
    done = sorted((r for r in rows if r["status"] == "done"), key=lambda r: (-r["review_priority"], r["subject"]))
    return [{"rank": i + 1, **{k: r[k] for k in QUEUE_COLUMNS[1:]}} for i, r in enumerate(done)]


def write_queue(rows: List[Dict[str, Any]], path: str) -> List[Dict[str, Any]]:
    queue = queue_rows(rows)

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=QUEUE_COLUMNS)
            writer.writeheader()
            writer.writerows(queue)

    atomic_write(path, write)
    return queue
