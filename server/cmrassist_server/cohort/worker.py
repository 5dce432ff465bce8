"""A cohort worker: one per Ray worker slot, the models loaded once, subjects analysed as they come.

Ray makes it an actor (``ray.remote(CohortWorker)``) with two concurrent calls, so that the next subject is read
while the current one computes. Every failure of a subject is recorded with its reason and the worker goes on.
"""

import os
import socket
import tempfile
import time
import traceback
from typing import Any, Dict, Optional

import torch

from cmrassist_server.cohort.analyse import AnalysisSettings, SubjectAnalyser
from cmrassist_server.cohort.models import ModelFiles
from cmrassist_server.cohort.outputs import CohortOutput
from cmrassist_server.cohort.review import save_to_store
from cmrassist_server.cohort.studies import Subject
from cmrassist_server.core.errors import CMRAssistError


def _saved(payload: Optional[bytes], folder: str, name: str) -> Optional[str]:
    if payload is None:
        return None
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(payload)
    return path


class CohortWorker:
    """Analyses subjects with the run's models.

    Args:
        models: checkpoint bytes by kind (``segmentation``, ``qc``; ``ensemble``: the members' bytes, maybe none),
            from ``ModelFiles.snapshot``.
        settings: the analysis settings.
        out: the run's output folder (shared storage when workers run on several hosts).
        threads: torch threads (the CPUs Ray gave this worker).
        review_store: the server's QC report store to put each subject's queue entry in (``None``: none).
        run_id: the run, recorded in each queue entry.
        model_files: where the models came from (their files stamp the queue entries).
    """

    def __init__(
        self,
        models: Dict[str, Optional[bytes]],
        settings: AnalysisSettings,
        out: str,
        *,
        threads: int,
        review_store: Optional[str],
        run_id: str,
        model_files: ModelFiles,
    ):
        torch.set_num_threads(max(1, threads))
        self._models = tempfile.TemporaryDirectory(prefix="cmrassist-cohort-")
        segmentation = _saved(models["segmentation"], self._models.name, "segmentation.pt")
        qc = _saved(models.get("qc"), self._models.name, "qc.pt")
        members = [
            _saved(member, self._models.name, f"ensemble-fold{k}.pt")
            for k, member in enumerate(models.get("ensemble") or [])
        ]
        self.output = CohortOutput(out)
        self.analyser = SubjectAnalyser(segmentation, qc, settings, self.output, ensemble=members)
        self.review_store = review_store
        self.run_id = run_id
        self.model_files = model_files

    def info(self) -> Dict[str, Any]:
        """Where this worker runs and on what."""
        device = self.analyser.predictor.device
        name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": device,
            "device_name": name,
            "threads": torch.get_num_threads(),
            "cpu_s": round(time.process_time(), 3),
        }

    def analyse(self, subject: Subject, stamp: Dict[str, Any]) -> Dict[str, Any]:
        """Analyse one subject; returns a short summary (``status`` done or failed, its row, frames, timings)."""
        try:
            record = self.analyser.analyse(subject, stamp)
        except Exception as e:  # any failure of one subject is recorded; the run goes on with the others
            reason = str(e) if isinstance(e, CMRAssistError) else f"{type(e).__name__}: {e}"
            for image in subject.images:  # the table says which file; where the studies folder lies is not a result
                reason = reason.replace(os.path.dirname(image.path) + os.sep, "")
            detail = "" if isinstance(e, CMRAssistError) else traceback.format_exc(limit=3)
            self.output.write_failure(subject.subject_id, stamp, reason, [i.image_id for i in subject.images])
            return {"subject": subject.subject_id, "status": "failed", "reason": reason, "detail": detail}
        images = {i.image_id: i.path for i in subject.images}
        stored = bool(self.review_store) and save_to_store(
            self.review_store, record, self.run_id, images, self.model_files
        )
        return {
            "subject": subject.subject_id,
            "status": "done",
            "row": record["row"],
            "stored": stored,
            "frames": len(record["frames"]),
            "timings": record["timings"],
        }
