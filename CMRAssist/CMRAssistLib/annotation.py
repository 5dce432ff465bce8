"""The annotation workflow without any GUI: connect, fetch a study, pick a frame, segment, submit, train.

The panels run these methods in the worker process (``worker.py``, started by ``background.py``); everything here
is plain Python (no Qt, no slicer), so it is tested against a real server with pytest. Every file the viewer loads
comes with uncompressed one-frame copies (``frame_files``), so the GUI thread never decompresses a whole cine.
"""

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .account import Account
from .client import CMRAssistClient, ServerError, TrainStatus
from .frames import join_frames, label_summary, split_frames, write_frame
from .ranking import RankingCalls
from .server_state import SEGMENTATION_MODEL, ServerState
from .settings import UserSettings

__all__ = ["SEGMENTATION_MODEL", "AnnotationSession", "LabelFile", "ServerState", "Study", "image_id_for"]


@dataclass
class Study:
    """A study image held locally: a 3D frame, or a 4D cine.

    Frame numbers in ``info`` (``ed_frame``, ``es_frame``, ``frame``) count from 1, as in ACDC's Info.cfg.
    """

    image_id: str
    path: str
    info: Dict[str, Any]
    n_frames: int = 1
    #: Uncompressed copy of each frame (see ``frames.split_frames``), what the viewer loads.
    frame_files: List[str] = field(default_factory=list)

    @property
    def is_cine(self) -> bool:
        return self.n_frames > 1

    @property
    def ed_frame(self) -> Optional[int]:
        return _frame_number(self.info.get("ed_frame"))

    @property
    def es_frame(self) -> Optional[int]:
        return _frame_number(self.info.get("es_frame"))

    def frame_choices(self) -> List[Tuple[str, Optional[int]]]:
        """``(text, frame number)`` pairs for the frame selector; ``None`` means the whole cine."""
        if not self.is_cine:
            phase = self.info.get("phase")
            return [(f"{phase} frame" if phase else "3D frame", None)]
        choices: List[Tuple[str, Optional[int]]] = []
        for phase, number in (("ED", self.ed_frame), ("ES", self.es_frame)):
            if number and 1 <= number <= self.n_frames:
                choices.append((f"{phase} (frame {number})", number))
        choices += [(f"frame {n}", n) for n in range(1, self.n_frames + 1) if n not in (self.ed_frame, self.es_frame)]
        choices.append((f"whole cine ({self.n_frames} frames)", None))
        return choices

    def describe(self) -> str:
        parts = [self.image_id]
        for key in ("patient", "group", "phase"):
            if self.info.get(key):
                parts.append(f"{key} {self.info[key]}")
        if self.is_cine:
            parts.append(f"{self.n_frames} frames, ED {self.ed_frame}, ES {self.es_frame}")
        return ", ".join(parts)


@dataclass
class LabelFile:
    """A label map from the server (3D, or 4D for a cine) with its frames as uncompressed copies for the viewer."""

    path: str
    frame_files: List[str] = field(default_factory=list)
    summary: str = ""


def _frame_number(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


def image_id_for(path: str) -> str:
    """A datastore id from a file or node name (letters, digits, ``_`` and ``-`` only)."""
    base = os.path.basename(path)
    for ext in (".nii.gz", ".nii", ".nrrd", ".seq.nrrd"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    return _SAFE_ID.sub("_", base).strip("_") or "study"


Progress = Callable[[float, str], None]


def _renamed(path: str, new_path: str) -> str:
    os.replace(path, new_path)
    return new_path


def _no_progress(fraction: float, text: str) -> None:
    pass


class AnnotationSession(RankingCalls):
    """One annotator working with one server.

    Args:
        settings: server address, annotator name and expertise.
        workdir: folder for downloaded studies and labels.
    """

    def __init__(self, settings: UserSettings, workdir: str):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.set_settings(settings)

    def set_settings(self, settings: UserSettings) -> None:
        self.settings = settings
        self.client = CMRAssistClient(settings.server_url, token=settings.token)

    # -- server -------------------------------------------------------------------------------------------
    def server_state(self) -> ServerState:
        """Who the server takes this user for (a refused token stops here, with its reason), its models and
        training."""
        account = Account.from_me(self.client.me())
        info = self.client.info()
        return ServerState.from_info(self.client.server_url, info, self.client.train_status(), account)

    # -- studies ------------------------------------------------------------------------------------------
    def next_study(self, strategy: str, progress: Progress = _no_progress) -> Study:
        """Ask the server for the next study with ``strategy`` and download it."""
        progress(0.1, f"asking the server for the next study ({strategy})")
        sample = self.client.next_sample(strategy)
        image_id = sample.get("id")
        if not image_id:
            raise ServerError("The server has no study left to annotate with this strategy.")
        return self.open_study(image_id, progress)

    def open_study(self, image_id: str, progress: Progress = _no_progress) -> Study:
        progress(0.3, f"downloading {image_id}")
        info = self.client.image_info(image_id)
        path = self.client.download_image(
            image_id, self.workdir, lambda f: progress(0.3 + 0.5 * f, f"downloading {image_id}")
        )
        progress(0.85, "preparing the frames")
        frames = split_frames(path, self._frames_folder(image_id))
        return Study(
            image_id=image_id, path=path, info=dict(info.get("info") or info), n_frames=len(frames), frame_files=frames
        )

    def _frames_folder(self, name: str) -> str:
        return os.path.join(self.workdir, "frames", name)

    def upload_local(self, path: str, image_id: Optional[str] = None, progress: Progress = _no_progress) -> Study:
        """Upload a volume that was already in the scene (after the user agreed) and open it as a study."""
        image_id = image_id or image_id_for(path)
        progress(0.2, f"uploading {image_id}")
        stored_id = self.client.upload_image(
            path,
            image_id,
            {"source": "3D Slicer scene", "uploaded_by": self.settings.annotator},
            lambda f: progress(0.2 + 0.7 * f, f"uploading {image_id}"),
        )
        frames = split_frames(path, self._frames_folder(stored_id))
        return Study(
            image_id=stored_id, path=path, info={"source": "3D Slicer scene"}, n_frames=len(frames), frame_files=frames
        )

    def frame_study(self, cine: Study, frame: int, progress: Progress = _no_progress) -> Study:
        """The 3D study of one cine frame (1-based): ``<cine id>_frameNN``, which the server makes from its own copy
        of the cine when a frame is first segmented (``cine_frame``); here only the frame's file for the viewer."""
        if not cine.is_cine:
            return cine
        if not 1 <= frame <= cine.n_frames:
            raise ValueError(f"frame {frame} is outside the cine's 1-{cine.n_frames}")
        image_id = f"{cine.image_id}_frame{frame:02d}"
        path = os.path.join(self.workdir, image_id + ".nii.gz")
        progress(0.2, f"frame {frame} of {cine.image_id}")
        write_frame(cine.path, frame - 1, path)
        phase = "ED" if frame == cine.ed_frame else "ES" if frame == cine.es_frame else "CINE_FRAME"
        info = {k: v for k, v in cine.info.items() if k in ("patient", "group", "ed_frame", "es_frame", "n_frames")}
        info.update({"phase": phase, "frame": frame, "source_image": cine.image_id})
        return Study(image_id=image_id, path=path, info=info, n_frames=1, frame_files=[])

    # -- segmentation and labels ---------------------------------------------------------------------------
    def segment(
        self,
        study: Study,
        progress: Progress = _no_progress,
        *,
        empty_outside_lv: bool = False,
        cine_frame: Optional[int] = None,
    ) -> str:
        """One-click segmentation: the label file (image geometry; 4D for a whole cine).

        Args:
            study: what to segment.
            progress: progress callback.
            empty_outside_lv: leave slices the server's slice-position classifier puts outside the LV empty.
            cine_frame: only this frame (1-based) of a cine, segmented where the server holds it (3D label).
        """
        progress(0.1, f"segmenting {study.image_id} on the server")
        params = {"outside_lv": "empty"} if empty_outside_lv else {}
        if cine_frame:
            params["cine_frame"] = cine_frame
        return self.client.infer(study.image_id, self.workdir, SEGMENTATION_MODEL, params=params)

    def label_file(self, path: str) -> LabelFile:
        """The label with its frame copies (for the viewer) and its one-line summary."""
        name = os.path.basename(path).split(".")[0]
        return LabelFile(path, split_frames(path, self._frames_folder(name + "_label")), label_summary(path))

    def segment_for_viewer(
        self,
        study: Study,
        frame: Optional[int] = None,
        progress: Progress = _no_progress,
        *,
        empty_outside_lv: bool = False,
    ) -> Tuple[Study, LabelFile]:
        """What the Segment button does: the chosen frame of a cine (stored once as its own study) or the whole
        study segmented, as the segmented study and its label ready for the viewer."""
        if study.is_cine and frame:  # segmented where it is: the server makes the frame study from its cine
            target = self.frame_study(study, frame, progress)
            path = self.segment(study, progress, empty_outside_lv=empty_outside_lv, cine_frame=frame)
            path = _renamed(path, os.path.join(self.workdir, f"{target.image_id}_{SEGMENTATION_MODEL}.nii.gz"))
        else:
            target = study
            path = self.segment(target, progress, empty_outside_lv=empty_outside_lv)
        progress(0.9, "preparing the label")
        return target, self.label_file(path)

    def propagate(self, cine: Study, progress: Progress = _no_progress, *, source: Optional[str] = None) -> str:
        """A labelled frame of the cine propagated to every frame; the 4D label file (also kept on the server).

        Args:
            cine: the cine study.
            progress: progress callback.
            source: the frame study whose submitted label is propagated; the server picks one when omitted (the
                ED frame's, else the first labelled frame's).
        """
        if not cine.is_cine:
            raise ValueError("propagation needs a cine: this study is one 3D frame")
        progress(0.1, f"propagating the labelled frame of {cine.image_id} to all {cine.n_frames} frames")
        return self.client.propagate(cine.image_id, self.workdir, source=source, store=True)

    def propagate_for_viewer(
        self, cine: Study, progress: Progress = _no_progress, *, source: Optional[str] = None
    ) -> Tuple[Study, LabelFile]:
        """:meth:`propagate`, with the 4D label ready for the viewer."""
        path = self.propagate(cine, progress, source=source)
        progress(0.9, "preparing the label")
        return cine, self.label_file(path)

    def slice_positions(self, study: Study) -> Dict[str, Any]:
        """Too basal / in the LV / too apical per slice of a 3D study (the server's ``slice_position`` model)."""
        return self.client.slice_positions(study.image_id)

    def submit(self, study: Study, label_path: str, progress: Progress = _no_progress) -> Dict[str, Any]:
        """Store the corrected label as ``final`` with annotator, expertise and time."""
        problem = self.settings.problems()
        if problem:
            raise ValueError(problem)
        progress(0.2, f"submitting the label of {study.image_id}")
        extra = {"frame": study.info["frame"]} if study.info.get("frame") else {}
        return self.client.submit_label(
            study.image_id,
            label_path,
            annotator=self.settings.annotator,
            expertise=self.settings.expertise,
            extra=extra,
        )

    def submit_frames(self, study: Study, frame_files: List[str], progress: Progress = _no_progress) -> LabelFile:
        """Join the viewer's per-frame label files on the study's exact grid, store the label, return it.

        Args:
            study: the segmented study (a frame or a whole cine).
            frame_files: one label file per frame, in frame order (what the viewer exported).
            progress: progress callback.
        """
        path = join_frames(frame_files, study.path, os.path.join(self.workdir, f"{study.image_id}_final.nii.gz"))
        self.submit(study, path, progress)
        return LabelFile(path, list(frame_files), label_summary(path))

    def review(
        self, study: Study, label: str, threshold: float, with_positions: bool, progress: Progress = _no_progress
    ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
        """QC report of the study's ``label`` and, with a trained slice-position model, its slice positions."""
        progress(0.2, f"checking {study.image_id} on the server")
        report = self.quality(study, label=label, threshold=threshold)
        if not with_positions:
            return report, None
        progress(0.8, f"slice positions of {study.image_id}")
        return report, self.slice_positions(study)

    def quality(self, study: Study, *, label: str = "prediction", threshold: Optional[float] = None) -> Dict[str, Any]:
        """QC report of a 3D study's model prediction or stored label (see ``docs/qc-report.schema.json``)."""
        return self.client.quality(study.image_id, label=label, threshold=threshold)

    # -- label versions (reviewers) ----------------------------------------------------------------------
    def report_file(self, image_id: str, fmt: str = "html") -> str:
        """The server's study report as a local file (``html`` or ``pdf``), for the system viewer."""
        return self.client.download_report(image_id, self.workdir, fmt)

    def label_versions(self, study: Study) -> Dict[str, Any]:
        """Every annotator's version of the study's label and which one was accepted."""
        return self.client.label_versions(study.image_id)

    def version_file(self, study: Study, version: str) -> str:
        return self.client.download_version(study.image_id, version, self.workdir)

    def version_for_viewer(self, study: Study, version: str) -> LabelFile:
        """One annotator's version of the study's label, ready for the viewer."""
        return self.label_file(self.version_file(study, version))

    def accept_version(self, study: Study, version: str) -> Dict[str, Any]:
        """Make ``version`` the study's final label, with this user as the reviewer."""
        problem = self.settings.problems()
        if problem:
            raise ValueError(problem)
        return self.client.accept_version(study.image_id, version, self.settings.annotator)

    def build_consensus(self, study: Study, versions: Optional[List[str]] = None) -> Dict[str, Any]:
        """STAPLE consensus of the versions (all submitted ones by default), made the final label."""
        problem = self.settings.problems()
        if problem:
            raise ValueError(problem)
        return self.client.build_consensus(study.image_id, self.settings.annotator, versions)

    # -- training -----------------------------------------------------------------------------------------
    def start_training(
        self, *, max_minutes: float, max_epochs: int = 1000, model: str = SEGMENTATION_MODEL, **choices: Any
    ) -> Dict[str, Any]:
        """Retrain ``model`` (``segmentation``, ``qc`` or ``slice_position``) within the budget.

        Args:
            max_minutes: time budget.
            max_epochs: epoch cap.
            model: which model.
            choices: more train params (segmentation: ``labels``, ``loss``, ``non_expert_weight``, ...).
        """
        return self.client.train_start(model, max_minutes=max_minutes, max_epochs=max_epochs, **choices)

    def start_cohort(self, **options: Any) -> Dict[str, Any]:
        """Start a cohort run of every study on the server (admin): ``frames`` ``all`` or ``ed-es``, ..."""
        return self.client.cohort_start(**options)

    def cohort_status(self) -> Dict[str, Any]:
        """The server's cohort run: state, progress counters, results."""
        return self.client.cohort_status()

    def stop_training(self) -> Dict[str, Any]:
        return self.client.train_stop()

    def model_versions(self, model: str = SEGMENTATION_MODEL) -> List[Dict[str, Any]]:
        """Every published version of ``model`` with its record (what it was trained on, validation figures)."""
        return self.client.model_versions(model)

    def make_model_current(self, model: str, version: str) -> Dict[str, Any]:
        """Serve an earlier published version of ``model`` again."""
        return self.client.make_model_current(model, version)

    def training_status(self) -> TrainStatus:
        return self.client.train_status()
