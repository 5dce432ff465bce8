"""Annotate panel: next study (or a scene volume), frame, one-click segmentation, correction, submission."""

import os
from typing import Callable, List, Optional, Tuple

from .annotation import AnnotationSession, LabelFile, ServerState, Study, image_id_for
from .background import BackgroundRunner
from .qt_compat import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTimer,
    QVBoxLayout,
    QWidget,
    ask_yes_no,
)
from .scene import SceneAdapter
from .widgets import JobPanel, RoleGate, add_busy_row

UPLOAD_QUESTION = (
    "Upload this volume to the CMRAssist server at {url}?\n\nThe image is stored in the server's "
    "datastore, where other annotators and training can use it. Only upload images you are allowed "
    "to share with that server."
)


class AnnotatePanel(JobPanel):
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session.
        runner: runs downloads, uploads and inference in the worker process, and the scene's steps.
        scene: the viewer (Slicer's scene in Slicer).
        ask: ``ask(title, question) -> bool``; a modal question box by default.
        consent_store: QSettings-like object remembering the one-time upload consent (``None``: ask each time).
    """

    def __init__(
        self,
        session: AnnotationSession,
        runner: BackgroundRunner,
        scene: SceneAdapter,
        *,
        ask: Optional[Callable[[str, str], bool]] = None,
        consent_store=None,
    ):
        self.session = session
        self.runner = runner
        self.scene = scene
        self.ask = ask or (lambda title, question: ask_yes_no(self.widget, title, question))
        self.consent_store = consent_store
        self.study: Optional[Study] = None  # what was fetched (a frame or a cine)
        self.target: Optional[Study] = None  # what was segmented (the chosen frame, or the whole study)
        self.label: Optional[LabelFile] = None  # the segmentation on screen, until it is submitted
        self.frames: List[Tuple[str, Optional[int]]] = []
        self.volume_choices: List[Tuple[str, str]] = []
        self.segmented_listeners: List[Callable[[Study], None]] = []
        self.shown_listeners: List[Callable[[Study], None]] = []  # a study is loaded and shown
        self.submitted_listeners: List[Callable[[Study], None]] = []
        self.connected = False
        self.gate = RoleGate()
        self._build()
        self._connect()
        self._update_buttons()

    def _build(self) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistAnnotatePanel"
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.strategy_combo = QComboBox()
        self.strategy_combo.toolTip = "How the server picks the next study"
        form.addRow("Strategy:", self.strategy_combo)
        self.volume_combo = QComboBox()
        self.volume_combo.toolTip = "A volume already loaded in the scene (it is uploaded to the server)"
        form.addRow("Scene volume:", self.volume_combo)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.next_button = QPushButton("Next study")
        self.use_volume_button = QPushButton("Use scene volume")
        row.addWidget(self.next_button)
        row.addWidget(self.use_volume_button)
        layout.addLayout(row)
        self.study_label = QLabel("No study loaded.")
        self.study_label.wordWrap = True
        layout.addWidget(self.study_label)
        frame_form = QFormLayout()
        self.frame_combo = QComboBox()
        self.frame_combo.toolTip = "The frame to segment (ED and ES first), or the whole cine"
        frame_form.addRow("Frame:", self.frame_combo)
        layout.addLayout(frame_form)
        self._build_actions(layout)
        self.gate.add(self.use_volume_button, "annotator", "upload a scene volume")
        self.gate.add(self.submit_button, "annotator", "submit labels")
        layout.addWidget(self.gate.label)
        self.progress_bar, self.cancel_button, self.message_label = add_busy_row(layout)

    def _build_actions(self, layout: QVBoxLayout) -> None:
        self.segment_button = QPushButton("Segment LV, myocardium and RV")
        self.segment_button.toolTip = "One click: the server's model segments the chosen frame"
        layout.addWidget(self.segment_button)
        self.propagate_button = QPushButton("Propagate labelled frame to all frames")
        self.propagate_button.toolTip = (
            "For a cine: the frame you labelled and submitted (ED first) is carried to "
            "every other frame by registration; correct ES (and any frame) and submit"
        )
        layout.addWidget(self.propagate_button)
        self.skip_outside_check = QCheckBox("Leave slices outside the LV empty")
        self.skip_outside_check.toolTip = (
            "Slices the server's slice-position classifier calls too basal or too "
            "apical are left unsegmented, so there is nothing to correct there "
            "(needs a trained slice_position model)"
        )
        self.skip_outside_check.enabled = False
        layout.addWidget(self.skip_outside_check)
        self.editor_host = QWidget()  # the module puts Slicer's Segment Editor here
        self.editor_layout = QVBoxLayout(self.editor_host)
        self.editor_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor_host)
        self.measures_label = QLabel("")
        self.measures_label.wordWrap = True
        layout.addWidget(self.measures_label)
        self.submit_button = QPushButton("Submit label")
        self.submit_button.toolTip = (
            "Store the corrected segmentation on the server as a final label, with your name and expertise"
        )
        layout.addWidget(self.submit_button)

    def _connect(self) -> None:
        self.next_button.clicked.connect(lambda *_: self.next_study())
        self.use_volume_button.clicked.connect(lambda *_: self.use_scene_volume())
        self.segment_button.clicked.connect(lambda *_: self.segment())
        self.propagate_button.clicked.connect(lambda *_: self.propagate())
        self.submit_button.clicked.connect(lambda *_: self.submit())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.frame_combo.currentIndexChanged.connect(lambda *_: self._frame_changed())
        self.volume_combo.currentIndexChanged.connect(lambda *_: self._volume_chosen())

    # -- state ----------------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        idle = self.connected and self.job is None
        self.next_button.enabled = idle and self.strategy_combo.count > 0
        self.use_volume_button.enabled = idle and self.volume_combo.count > 0
        self.segment_button.enabled = idle and self.study is not None
        self.propagate_button.enabled = idle and self.study is not None and self.study.is_cine
        self.submit_button.enabled = idle and self.label is not None
        self.cancel_button.enabled = self.job is not None
        self.frame_combo.enabled = self.job is None and len(self.frames) > 1
        self.gate.apply()

    def server_changed(self, state: ServerState) -> None:
        """Connection panel listener: offer the server's strategies; warn when no model is trained yet; what the
        account may do."""
        self.connected = True
        self.gate.account = state.account
        current = self.strategy_combo.currentText
        self.strategy_combo.blockSignals(True)  # refilled, not chosen: listeners hear only the user's choice
        self.strategy_combo.clear()
        for name in state.strategies:
            self.strategy_combo.addItem(name)
        if current in state.strategies:
            self.strategy_combo.currentIndex = state.strategies.index(current)
        self.strategy_combo.blockSignals(False)
        self.refresh_volumes()
        positions = bool(state.models.get("slice_position", {}).get("trained"))
        self.skip_outside_check.enabled = positions
        if not positions:
            self.skip_outside_check.checked = False
        if not state.segmentation_trained:
            self.message_label.text = (
                "The server has no trained segmentation model yet: submit labels and start training in the Train panel."
            )
        self._update_buttons()

    def refresh_volumes(self) -> None:
        self.volume_choices = self.scene.volume_choices()
        self.volume_combo.clear()
        for name, _key in self.volume_choices:
            self.volume_combo.addItem(name)
        self._volume_chosen()

    def _volume_chosen(self) -> None:
        """The button says what it will do with the chosen volume: open it on the server, or upload it."""
        index = self.volume_combo.currentIndex
        on_server = 0 <= index < len(self.volume_choices) and self.scene.server_image_id(self.volume_choices[index][1])
        self.use_volume_button.text = "Open on server" if on_server else "Use scene volume"
        self._update_buttons()

    def selected_frame(self) -> Optional[int]:
        index = self.frame_combo.currentIndex
        return self.frames[index][1] if 0 <= index < len(self.frames) else None

    # -- actions ---------------------------------------------------------------------------------------------
    def next_study(self) -> None:
        strategy = self.strategy_combo.currentText
        self._call(
            "next-study",
            "next_study",
            strategy,
            on_done=self._study_loaded,
            text=f"Fetching the next study ({strategy}) ...",
        )

    def open_study(self, image_id: str) -> None:
        """Open a study the server holds (a scene volume that came from it, or the study of a reloaded module)."""
        self._call("open", "open_study", image_id, on_done=self._study_loaded, text=f"Opening {image_id} ...")

    def use_scene_volume(self) -> None:
        index = self.volume_combo.currentIndex
        if not 0 <= index < len(self.volume_choices):
            return
        name, key = self.volume_choices[index]
        image_id = self.scene.server_image_id(key)
        if image_id is not None:  # it came from the server: open it there, uploading it again would be refused
            self.open_study(image_id)
            return
        if not self._upload_consent():
            self.message_label.text = "Not uploaded: the scene volume stays on this computer."
            return
        path = self.scene.save_volume(key, os.path.join(self.session.workdir, "scene_volume.nrrd"))
        self._call(
            "upload", "upload_local", path, image_id_for(name), on_done=self._study_loaded, text=f"Uploading {name} ..."
        )

    def _upload_consent(self) -> bool:
        key = "CMRAssist/uploadConsent/" + self.session.client.server_url
        if self.consent_store is not None and str(self.consent_store.value(key, "")) == "yes":
            return True
        agreed = self.ask("Upload to the server?", UPLOAD_QUESTION.format(url=self.session.client.server_url))
        if agreed and self.consent_store is not None:
            self.consent_store.setValue(key, "yes")
        return agreed

    def _study_loaded(self, study: Study) -> None:
        self.study, self.target, self.label, self.frames = study, None, None, []
        self.study_label.text = study.describe()
        self._steps(
            "show-study",
            self.scene.show_study(study),
            lambda _: self._study_shown(study),
            f"Loading {study.image_id} into the scene ...",
        )

    def _forget_study(self) -> None:
        self.study, self.target, self.label, self.frames = None, None, None, []
        self.frame_combo.clear()
        self.study_label.text = "No study loaded."
        self.measures_label.text = ""
        self.refresh_volumes()

    def _study_shown(self, study: Study) -> None:
        self.frames = study.frame_choices()
        self.frame_combo.blockSignals(True)
        self.frame_combo.clear()
        for text, _ in self.frames:
            self.frame_combo.addItem(text)
        self.frame_combo.currentIndex = 0
        self.frame_combo.blockSignals(False)
        self._frame_changed()
        self.measures_label.text = ""
        self.message_label.text = f"Loaded {study.image_id}. Choose the frame and press Segment."
        for listener in self.shown_listeners:
            listener(study)

    def _frame_changed(self) -> None:
        if self.study is not None and self.job is None:
            self.scene.show_frame(self.study, self.selected_frame())

    def segment(self) -> None:
        skip = self.skip_outside_check.checked and self.skip_outside_check.enabled
        self._call(
            "segment",
            "segment_for_viewer",
            self.study,
            self.selected_frame(),
            empty_outside_lv=skip,
            on_done=self._segmented,
            text=f"Segmenting {self.study.image_id} ...",
        )

    def propagate(self) -> None:
        study, target = self.study, self.target
        # The frame just labelled here, if any; otherwise the server picks the cine's labelled frame (ED first).
        source = target.image_id if target is not None and target.info.get("source_image") == study.image_id else None
        self._call(
            "propagate",
            "propagate_for_viewer",
            study,
            source=source,
            on_done=self._propagated,
            text=f"Propagating the labelled frame of {study.image_id} ...",
        )

    def _propagated(self, result: Tuple[Study, LabelFile]) -> None:
        self._segmented(
            result,
            then=(
                "Every frame now has a label carried from the labelled frame: check ES (and "
                "any other frame), correct it with the Segment Editor, then press Submit label."
            ),
        )

    def _segmented(self, result: Tuple[Study, LabelFile], then: str = "") -> None:
        target, label = result
        self._steps(
            "show-segmentation",
            self.scene.show_segmentation(target, label),
            lambda _: self._segmentation_shown(target, label, then),
            "Showing the segmentation ...",
        )

    def _segmentation_shown(self, target: Study, label: LabelFile, then: str) -> None:
        self.target, self.label = target, label
        self.measures_label.text = label.summary
        for listener in self.segmented_listeners:
            listener(target)
        self.message_label.text = then or "Correct the segments with the Segment Editor, then press Submit label."

    def submit(self) -> None:
        problem = self.session.settings.problems()
        if problem:
            self.message_label.text = problem
            return
        target = self.target
        folder = os.path.join(self.session.workdir, "export", target.image_id)
        self._steps(
            "export",
            self.scene.export_label(target, folder),
            lambda files: self._call(
                "submit",
                "submit_frames",
                target,
                files,
                on_done=self._submitted,
                text=f"Submitting the label of {target.image_id} ...",
            ),
            "Reading the segmentation ...",
        )

    def _submitted(self, label: LabelFile) -> None:
        s = self.session.settings
        self.measures_label.text = label.summary
        self.message_label.text = f"Submitted {self.target.image_id} as a final label by {s.annotator} ({s.expertise})."
        self.label = None
        for listener in self.submitted_listeners:
            listener(self.target)
        # A modal question inside a job's callback would run a nested event loop there: ask once it has returned.
        QTimer.singleShot(0, self._offer_next_study)

    def _offer_next_study(self) -> None:
        if self.strategy_combo.count and self.job is None and self.ask("Label submitted", "Load the next study?"):
            self.next_study()
