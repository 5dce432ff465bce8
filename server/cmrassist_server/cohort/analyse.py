"""The analysis of one subject, as a worker runs it: read -> preprocess -> network -> post-processing -> QC ->
measures and checks -> labels and record written. The models are loaded once per worker.

The network sees batches of slices gathered over the subject's frames (a cine's frames share their grid), so a
30-frame cine is a handful of forward passes. Two subjects may be in a worker at once: one is read or written
while the other computes (the compute lock lets one use the network and QC at a time).
"""

import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cmrassist_server.cohort.checks import CheckSettings
from cmrassist_server.cohort.frames import Frame, subject_frames
from cmrassist_server.cohort.outputs import CohortOutput
from cmrassist_server.cohort.record import subject_record
from cmrassist_server.cohort.studies import Subject
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.imaging.postprocess import clean_label
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.metrics import CHECKED_CLASSES, DEFAULT_THRESHOLD
from cmrassist_server.segmentation.ensemble import EnsemblePredictor

STAGES = ("read", "preprocess", "network", "postprocess", "qc", "write")


@dataclass(frozen=True)
class AnalysisSettings:
    """How each subject is analysed.

    Args:
        frames: ``all`` (every cine frame) or ``ed-es`` (ED and ES only, when the image info names them).
        batch_slices: slices per forward pass of the network.
        device: ``cpu`` or ``cuda``; CUDA when the worker has a GPU by default.
        amp: half-precision autocast on CUDA.
        qc_threshold: predicted slice Dice under which QC flags a slice (the server's default).
        checks: tolerances of the subject checks.
    """

    frames: str = "all"
    batch_slices: int = 64
    device: Optional[str] = None
    amp: bool = True
    qc_threshold: float = DEFAULT_THRESHOLD
    checks: CheckSettings = field(default_factory=CheckSettings)

    def stamp(self) -> Dict:
        """The settings a result depends on (not batch size, device or AMP, which only change speed)."""
        return {"frames": self.frames, "qc_threshold": self.qc_threshold, "checks": self.checks.as_dict()}


class StageTimer:
    """Seconds spent in each stage."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def rounded(self) -> Dict[str, float]:
        return {k: round(self.seconds.get(k, 0.0), 4) for k in STAGES}


class SubjectAnalyser:
    """Analyses subjects with the loaded batch segmentation (the fold ensemble, or the segmentation model alone,
    averaged over flips: ``segmentation/batch.py``) and QC checker, which looks through the same segmentation.

    Args:
        segmentation: segmentation checkpoint path.
        qc: QC checkpoint path (``None``: rule checks only).
        settings: the analysis settings.
        output: where labels and records go.
        ensemble: the fold ensemble's members, when the run uses them instead of ``segmentation``.
    """

    def __init__(
        self,
        segmentation: str,
        qc: Optional[str],
        settings: AnalysisSettings,
        output: CohortOutput,
        *,
        ensemble: Sequence[str] = (),
    ):
        self.settings = settings
        self.predictor = EnsemblePredictor(
            list(ensemble) or [segmentation], device=settings.device, flips=True, batch_slices=settings.batch_slices
        )
        self.checker = QualityChecker(qc, device=self.predictor.device, segmentation=self.predictor)
        self.thresholds = dict.fromkeys(CHECKED_CLASSES, settings.qc_threshold)
        self.output = output
        self.compute_lock = threading.Lock()

    def _autocast(self):
        if self.predictor.device == "cuda" and self.settings.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _batches(self, frames: List[Frame], timer: StageTimer) -> Iterator[Tuple[List[int], torch.Tensor, list]]:
        """Preprocessed frames gathered into batches of about ``batch_slices`` slices of the same window size."""
        pending: List[Tuple[int, torch.Tensor, object]] = []
        for i, frame in enumerate(frames):
            with timer.stage("preprocess"):
                stack, ctx = self.predictor.network_input(frame.array, Orientation.of(frame.reference))
            if pending and tuple(pending[0][1].shape[1:]) != tuple(stack.shape[1:]):
                yield [p[0] for p in pending], torch.cat([p[1] for p in pending]), [p[2] for p in pending]
                pending = []
            pending.append((i, stack, ctx))
            if sum(p[1].shape[0] for p in pending) >= self.settings.batch_slices:
                yield [p[0] for p in pending], torch.cat([p[1] for p in pending]), [p[2] for p in pending]
                pending = []
        if pending:
            yield [p[0] for p in pending], torch.cat([p[1] for p in pending]), [p[2] for p in pending]

    def segment(self, frames: List[Frame], timer: StageTimer) -> List[np.ndarray]:
        """Label maps ``(z, y, x)`` of the frames, exactly as the predictor's ``segment`` makes them."""
        labels: List[Optional[np.ndarray]] = [None] * len(frames)
        self.predictor.views.size = max(self.predictor.views.size, len(frames))  # every frame's view, for its QC
        for indices, stack, contexts in self._batches(frames, timer):
            with timer.stage("network"), self._autocast():
                passes = self.predictor.window_passes(stack)
            with timer.stage("postprocess"):
                start = 0
                for i, ctx in zip(indices, contexts):
                    n = ctx.canonical_shape[0]
                    # The frame's view is kept for its QC, which then runs no segmentation pass of its own.
                    mean = self.predictor.remember(ctx, passes[:, start : start + n], stack[start : start + n])
                    label = self.predictor.preprocessor.invert_probabilities(mean, ctx)
                    orientation = ctx.orientation
                    labels[i] = orientation.from_canonical(clean_label(orientation.to_canonical(label)))
                    start += n
        return labels  # type: ignore[return-value]

    def check(self, frames: List[Frame], labels: List[np.ndarray], timer: StageTimer) -> List[Dict]:
        """The QC report of each frame (the same report as the ``qc`` infer task's)."""
        reports = []
        for frame, label in zip(frames, labels):
            with timer.stage("qc"):
                report = self.checker.check(frame.reference, label, thresholds=self.thresholds)
            report.update(
                image=frame.image.image_id,
                frame=frame.number,
                label="prediction",
                image_info=dict(frame.image.info),
                seconds={"qc": report.pop("seconds")},
            )
            reports.append(report)
        return reports

    def analyse(self, subject: Subject, stamp: Dict) -> Dict:
        """Analyse one subject and write its labels and record; returns its record (``status`` done)."""
        timer = StageTimer()
        started = time.time()
        with timer.stage("read"):
            chosen = subject_frames(subject, self.settings.frames)
        with self.compute_lock:
            labels = self.segment(chosen.frames, timer)
            reports = self.check(chosen.frames, labels, timer)
        with timer.stage("write"):
            self.output.start_subject(subject.subject_id)
            paths = [
                self.output.write_label(subject.subject_id, f.label_name, label, f.reference)
                for f, label in zip(chosen.frames, labels)
            ]
        record = subject_record(subject, chosen, labels, reports, paths, self.settings)
        record["stamp"] = stamp
        record["timings"] = {**timer.rounded(), "total": round(time.time() - started, 4)}
        with timer.stage("write"):
            self.output.write_subject(record)
        record["timings"]["write"] = timer.rounded()["write"]
        return record
