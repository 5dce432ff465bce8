"""The parts of the annotation campaign simulator (``bench/campaign.py``): the cohort's frames, the annotators
(expert, non-expert, model), their corrections and what each costs, and a site (the real server, driven over HTTP).

Every label array here is canonical: ``(slices, rows, columns)``, slice axis first, as the server's QC and
slice-position reports count slices. The unit of cost is one class on one slice touched by one annotator kind.
"""

import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import SimpleITK as sitk

from cmrassist_server.annotations.nonexpert import simulate_nonexpert
from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.launcher import RunningServer
from CMRAssistLib.client import CMRAssistClient

#: The checked classes: name in the server's reports, label value.
CLASSES = {"rv_cavity": 1, "lv_myocardium": 2, "lv_cavity": 3}
#: A cell: one class on one slice (canonical slice index, label value).
Cell = Tuple[int, int]


@dataclass
class Frame:
    """One cohort frame (ED or ES of a subject) as a server study, with its expert label.

    Args:
        image_id: the study's id on the server.
        subject: the subject it belongs to.
        phase: ``ED`` or ``ES``.
        image: the frame (its grid is the labels' grid).
        truth: the expert label, canonical.
        cine_id: the subject's cine study, where the site stores one (propagation starts from it).
        cine_frame: this frame's 1-based index in that cine.
    """

    image_id: str
    subject: str
    phase: str
    image: sitk.Image
    truth: np.ndarray
    cine_id: Optional[str] = None
    cine_frame: Optional[int] = None

    @property
    def orientation(self) -> Orientation:
        return Orientation.of(self.image)

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """Canonical ``(slice, row, column)`` spacing in mm."""
        return tuple(float(s) for s in self.orientation.spacing)  # type: ignore[return-value]


def cells(label: np.ndarray) -> Set[Cell]:
    """Every class present on every slice of ``label``: what drawing it from scratch touches."""
    return {(k, v) for k in range(label.shape[0]) for v in CLASSES.values() if (label[k] == v).any()}


def correct(label: np.ndarray, truth: np.ndarray, touched: Set[Cell]) -> np.ndarray:
    """``label`` with each touched cell redrawn as the expert has it: that class's pixels on that slice removed,
    then the expert's drawn in."""
    out = label.copy()
    for k, v in sorted(touched):
        out[k][out[k] == v] = 0
        out[k][truth[k] == v] = v
    return out


def differing(label: np.ndarray, truth: np.ndarray) -> Set[Cell]:
    """The cells where ``label`` and the expert's differ (the most an ideal reviewer would touch)."""
    out = set()
    for k in range(label.shape[0]):
        out |= {(k, v) for v in CLASSES.values() if ((label[k] == v) != (truth[k] == v)).any()}
    return out


def nonexpert_label(frame: Frame, seed: int, severity: str = "well_trained") -> np.ndarray:
    """The simulated non-expert's label of a frame (one fixed draw per frame and seed)."""
    rng = np.random.default_rng([seed, zlib.crc32(frame.image_id.encode())])
    return simulate_nonexpert(frame.truth, severity, rng)


@dataclass
class Ledger:
    """Cells touched so far, per annotator kind, and per frame labelled."""

    expert: int = 0
    nonexpert: int = 0
    frames: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def charge(self, image_id: str, *, expert: int = 0, nonexpert: int = 0) -> None:
        self.expert += expert
        self.nonexpert += nonexpert
        entry = self.frames.setdefault(image_id, {"expert": 0, "nonexpert": 0})
        entry["expert"] += expert
        entry["nonexpert"] += nonexpert


class Site:
    """A campaign's own server on its own studies and model folders, and the calls the campaign makes to it.

    Args:
        studies: the studies folder (copied for this campaign: labels land in it).
        model_dir: the models folder (copied likewise: training replaces its model).
        log_path: the server's log.
    """

    def __init__(self, studies: str, model_dir: str, log_path: str):
        # Nothing shipped is installed: the site's models are the seed's and what its own trainings made. The
        # campaign asks the QC of each frame itself; MONAI Label's scoring of every study after start-up and after
        # each training would only compete with it for the CPU (the same for every strategy, and no figure).
        no_scoring = {"MONAI_LABEL_AUTO_UPDATE_SCORING": "false"}
        self.server = RunningServer(studies, model_dir, log_path, ["--conf", "shipped_dir", "none"], env=no_scoring)
        self.client = CMRAssistClient(self.server.url, timeout=120)
        self.work = tempfile.mkdtemp(prefix="campaign-site-")

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def _read(self, path: str, frame: Frame) -> np.ndarray:
        label = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.uint8)
        os.remove(path)
        return frame.orientation.to_canonical(label)

    def segment(self, frame: Frame) -> np.ndarray:
        """One-click: the served model's label of the frame."""
        return self._read(self.client.infer(frame.image_id, self.work), frame)

    def flagged(self, frame: Frame, label: str) -> Set[Cell]:
        """The cells the server's QC flags on the frame's ``label`` (``prediction`` or a stored tag)."""
        report = self.client.quality(frame.image_id, label=label)
        out = set()
        for entry in report["slices"]:
            out |= {(entry["slice"], CLASSES[name]) for name, c in entry["classes"].items() if c["flagged"]}
        return out

    def outside_lv(self, frame: Frame) -> Set[int]:
        """The slices the slice-position classifier places outside the LV (too basal or too apical)."""
        report = self.client.slice_positions(frame.image_id)
        return {s["slice"] for s in report["slices"] if s["position"] != "in_lv"}

    def propagated(self, source: Frame, target: Frame) -> Optional[np.ndarray]:
        """The source frame's stored label carried through the subject's cine to the target frame (``None``
        without a cine)."""
        if source.cine_id is None or target.cine_frame is None:
            return None
        path = self.client.propagate(source.cine_id, self.work, source=source.image_id)
        frames = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.uint8)
        os.remove(path)
        return target.orientation.to_canonical(frames[target.cine_frame - 1])

    def submit(self, frame: Frame, label: np.ndarray, expertise: str, annotator: str) -> None:
        """Store the frame's label as its ``final`` one, with who made it."""
        image = sitk.GetImageFromArray(frame.orientation.from_canonical(label.astype(np.uint8)))
        image.CopyInformation(frame.image)
        path = os.path.join(self.work, f"{frame.image_id}_label.nii.gz")
        sitk.WriteImage(image, path, useCompression=True)
        self.client.submit_label(frame.image_id, path, annotator=annotator, expertise=expertise)
        os.remove(path)

    def train(self, epochs: int, *, from_scratch: bool = False, timeout_s: float = 7200) -> Dict:
        """``POST /train/segmentation`` for a fixed number of epochs (a budget the CPU's load does not change),
        from the served model unless ``from_scratch``; waits for it to end. Returns the last training status."""
        self.client.train_start(
            "segmentation", max_epochs=epochs, max_minutes=timeout_s / 60, from_scratch=from_scratch, val_split=0.2
        )
        deadline = time.time() + timeout_s
        time.sleep(1)
        while self.client.train_status().running and time.time() < deadline:
            time.sleep(2)
        status = self.client.train_status()
        if status.state not in ("DONE", "SUCCESS", "COMPLETED") and not status.best_val:
            raise RuntimeError(f"training did not finish: {status.state} {status.message}")
        return {"state": status.state, "epoch": status.epoch, "best_val": status.best_val}


#: The strategies, by the issue's letters: who draws, who reviews what.
STRATEGIES = {
    "a": "experts label everything from scratch (the reference)",
    "b": "the model pre-segments; experts correct the slices the QC flags",
    "c": "the model pre-segments; experts correct as many randomly chosen slices",
    "d": "non-experts label everything; experts correct the slices the QC flags",
    "e": "(d), ES propagated from the reviewed ED through the cine, slices outside the LV left out",
}


@dataclass
class Campaign:
    """One strategy's run on one site: its ledger, its expert budget and the labels it made.

    Args:
        strategy: a key of :data:`STRATEGIES`.
        site: its server.
        budget: expert cells it may spend in all.
        seed: the non-expert's and the random reviewer's seed.
    """

    strategy: str
    site: Site
    budget: int
    seed: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    labels: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def spent(self) -> bool:
        return self.ledger.expert >= self.budget

    def _review(self, frame: Frame, label: np.ndarray, chosen: List[Cell]) -> np.ndarray:
        """The expert corrects ``chosen`` cells, as many as the budget still allows."""
        chosen = chosen[: max(0, self.budget - self.ledger.expert)]
        self.ledger.charge(frame.image_id, expert=len(chosen))
        return correct(label, frame.truth, set(chosen))

    def label(self, frame: Frame, ed: Optional[Frame] = None) -> None:
        """Label one frame by the strategy and store the result on the server (``ed``: its subject's ED frame,
        already labelled, for propagation)."""
        if self.strategy == "a":
            label = self._review(frame, np.zeros_like(frame.truth), sorted(cells(frame.truth)))
            expertise = "expert"
        elif self.strategy in ("b", "c"):
            label = self.site.segment(frame)
            flagged = sorted(self.site.flagged(frame, "prediction"))
            if self.strategy == "c":  # as many as the QC would have chosen, anywhere a class is or should be
                pool = sorted(cells(label) | cells(frame.truth))
                rng = np.random.default_rng([self.seed, zlib.crc32(frame.image_id.encode())])
                flagged = [pool[i] for i in rng.permutation(len(pool))[: len(flagged)]]
            label = self._review(frame, label, flagged)
            expertise = "expert"
        else:
            label, expertise = self._nonexpert_then_review(frame, ed), "non-expert"
        self.site.submit(frame, label, expertise, f"campaign-{self.strategy}")
        self.labels[frame.image_id] = label

    def _nonexpert_then_review(self, frame: Frame, ed: Optional[Frame]) -> np.ndarray:
        """(d) and (e): the non-expert's label (or, in (e), the propagated one), stored, QC'd, reviewed."""
        outside: Set[int] = self.site.outside_lv(frame) if self.strategy == "e" else set()
        start = None
        if self.strategy == "e" and ed is not None and ed.image_id in self.labels:
            start = self.site.propagated(ed, frame)
        if start is None:
            start = nonexpert_label(frame, self.seed)
            start[sorted(outside)] = 0
            self.ledger.charge(frame.image_id, nonexpert=len(cells(start)))
        else:
            start[sorted(outside)] = 0
        self.site.submit(frame, start, "non-expert", f"campaign-{self.strategy}-non-expert")
        flagged = sorted(c for c in self.site.flagged(frame, "final") if c[0] not in outside)
        return self._review(frame, start, flagged)
