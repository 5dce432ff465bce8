"""Annotate panel: next study (or a scene volume), frame, one-click segmentation, correction, submission."""

import os
from typing import Callable, List, Optional, Tuple

from .annotation import AnnotationSession, ServerState, Study, image_id_for
from .background import BackgroundRunner, Job
from .qt_compat import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget,
                        ask_yes_no, prop)
from .scene import SceneAdapter
from .widgets import JobPanel, add_busy_row

UPLOAD_QUESTION = ("Upload this volume to the CMRAssist server at {url}?\n\nThe image is stored in the server's "
                   "datastore, where other annotators and training can use it. Only upload images you are allowed "
                   "to share with that server.")


def label_summary(label_path: str) -> str:
    """LV cavity and RV cavity volume and LV myocardial mass of a 3D label file (one line)."""
    import SimpleITK as sitk

    from CMRAssistCore.measures import MYOCARDIAL_DENSITY_G_PER_ML, class_volumes_ml

    image = sitk.ReadImage(label_path)
    if image.GetDimension() != 3:
        return f"{image.GetSize()[3]} frames segmented"
    volumes = class_volumes_ml(sitk.GetArrayViewFromImage(image), tuple(reversed(image.GetSpacing())))
    return (f"LV cavity {volumes['lv_cavity']:.1f} ml, RV cavity {volumes['rv_cavity']:.1f} ml, "
            f"LV myocardium {volumes['lv_myocardium'] * MYOCARDIAL_DENSITY_G_PER_ML:.1f} g")


class AnnotatePanel(JobPanel):
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session.
        runner: runs downloads, uploads and inference off the GUI thread.
        scene: the viewer (Slicer's scene in Slicer).
        ask: ``ask(title, question) -> bool``; a modal question box by default.
        consent_store: QSettings-like object remembering the one-time upload consent (``None``: ask each time).
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, scene: SceneAdapter, *,
                 ask: Optional[Callable[[str, str], bool]] = None, consent_store=None):
        self.session = session
        self.runner = runner
        self.scene = scene
        self.ask = ask or (lambda title, question: ask_yes_no(self.widget, title, question))
        self.consent_store = consent_store
        self.study: Optional[Study] = None  # what was fetched (a frame or a cine)
        self.target: Optional[Study] = None  # what was segmented (the chosen frame, or the whole study)
        self.label_path: Optional[str] = None
        self.frames: List[Tuple[str, Optional[int]]] = []
        self.job: Optional[Job] = None
        self.segmented_listeners: List[Callable[[Study], None]] = []
        self.submitted_listeners: List[Callable[[Study], None]] = []

        self.widget = QWidget()
        self.widget.setObjectName("CMRAssistAnnotatePanel")
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.strategy_combo = QComboBox()
        self.strategy_combo.setToolTip("How the server picks the next study")
        form.addRow("Strategy:", self.strategy_combo)
        self.volume_combo = QComboBox()
        self.volume_combo.setToolTip("A volume already loaded in the scene (it is uploaded to the server)")
        form.addRow("Scene volume:", self.volume_combo)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.next_button = QPushButton("Next study")
        self.use_volume_button = QPushButton("Use scene volume")
        row.addWidget(self.next_button)
        row.addWidget(self.use_volume_button)
        layout.addLayout(row)
        self.study_label = QLabel("No study loaded.")
        self.study_label.setWordWrap(True)
        layout.addWidget(self.study_label)
        frame_form = QFormLayout()
        self.frame_combo = QComboBox()
        self.frame_combo.setToolTip("The frame to segment (ED and ES first), or the whole cine")
        frame_form.addRow("Frame:", self.frame_combo)
        layout.addLayout(frame_form)
        self.segment_button = QPushButton("Segment LV, myocardium and RV")
        self.segment_button.setToolTip("One click: the server's model segments the chosen frame")
        layout.addWidget(self.segment_button)
        self.propagate_button = QPushButton("Propagate labelled frame to all frames")
        self.propagate_button.setToolTip("For a cine: the frame you labelled and submitted (ED first) is carried to "
                                         "every other frame by registration; correct ES (and any frame) and submit")
        layout.addWidget(self.propagate_button)
        self.skip_outside_check = QCheckBox("Leave slices outside the LV empty")
        self.skip_outside_check.setToolTip("Slices the server's slice-position classifier calls too basal or too "
                                           "apical are left unsegmented, so there is nothing to correct there "
                                           "(needs a trained slice_position model)")
        self.skip_outside_check.setEnabled(False)
        layout.addWidget(self.skip_outside_check)
        self.editor_host = QWidget()  # the viewer puts its segment editor here
        self.editor_layout = QVBoxLayout(self.editor_host)
        self.editor_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor_host)
        self.measures_label = QLabel("")
        self.measures_label.setWordWrap(True)
        layout.addWidget(self.measures_label)
        self.submit_button = QPushButton("Submit label")
        self.submit_button.setToolTip("Store the corrected segmentation on the server as a final label, with your "
                                      "name and expertise")
        layout.addWidget(self.submit_button)
        self.progress_bar, self.cancel_button, self.message_label = add_busy_row(layout)

        self.next_button.clicked.connect(lambda *_: self.next_study())
        self.use_volume_button.clicked.connect(lambda *_: self.use_scene_volume())
        self.segment_button.clicked.connect(lambda *_: self.segment())
        self.propagate_button.clicked.connect(lambda *_: self.propagate())
        self.submit_button.clicked.connect(lambda *_: self.submit())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.frame_combo.currentIndexChanged.connect(lambda *_: self._frame_changed())
        self.connected = False
        self._update_buttons()

    # -- state ----------------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.job is not None
        self.next_button.setEnabled(self.connected and not busy and self.strategy_combo.count() > 0)
        self.use_volume_button.setEnabled(self.connected and not busy and self.volume_combo.count() > 0)
        self.segment_button.setEnabled(self.connected and not busy and self.study is not None)
        self.propagate_button.setEnabled(self.connected and not busy and self.study is not None and self.study.is_cine)
        self.submit_button.setEnabled(self.connected and not busy and self.label_path is not None)
        self.cancel_button.setEnabled(busy)
        self.frame_combo.setEnabled(not busy and len(self.frames) > 1)

    def server_changed(self, state: ServerState) -> None:
        """Connection panel listener: offer the server's strategies; warn when no model is trained yet."""
        self.connected = True
        current = str(prop(self.strategy_combo, "currentText"))
        self.strategy_combo.clear()
        for name in state.strategies:
            self.strategy_combo.addItem(name)
        if current in state.strategies:
            self.strategy_combo.setCurrentIndex(state.strategies.index(current))
        self.refresh_volumes()
        positions = bool(state.models.get("slice_position", {}).get("trained"))
        self.skip_outside_check.setEnabled(positions)
        if not positions:
            self.skip_outside_check.setChecked(False)
        if not state.segmentation_trained:
            self.message_label.setText("The server has no trained segmentation model yet: submit labels and "
                                       "start training in the Train panel.")
        self._update_buttons()

    def refresh_volumes(self) -> None:
        self.volume_choices = self.scene.volume_choices()
        self.volume_combo.clear()
        for name, _key in self.volume_choices:
            self.volume_combo.addItem(name)
        self._update_buttons()

    def selected_frame(self) -> Optional[int]:
        index = prop(self.frame_combo, "currentIndex")
        return self.frames[index][1] if 0 <= index < len(self.frames) else None

    # -- actions ---------------------------------------------------------------------------------------------
    def next_study(self) -> None:
        strategy = str(prop(self.strategy_combo, "currentText"))
        self._run("next-study", lambda job: self.session.next_study(strategy, job.report), self._study_loaded,
                  f"Fetching the next study ({strategy}) ...")

    def use_scene_volume(self) -> None:
        index = prop(self.volume_combo, "currentIndex")
        if not 0 <= index < len(self.volume_choices):
            return
        name, key = self.volume_choices[index]
        if not self._upload_consent():
            self.message_label.setText("Not uploaded: the scene volume stays on this computer.")
            return
        path = self.scene.save_volume(key, os.path.join(self.session.workdir, "scene_volume.nii.gz"))
        self._run("upload", lambda job: self.session.upload_local(path, image_id_for(name), job.report),
                  self._study_loaded, f"Uploading {name} ...")

    def _upload_consent(self) -> bool:
        key = "CMRAssist/uploadConsent/" + self.session.client.server_url
        if self.consent_store is not None and str(self.consent_store.value(key, "")) == "yes":
            return True
        agreed = self.ask("Upload to the server?", UPLOAD_QUESTION.format(url=self.session.client.server_url))
        if agreed and self.consent_store is not None:
            self.consent_store.setValue(key, "yes")
        return agreed

    def _study_loaded(self, study: Study) -> None:
        self.study, self.target, self.label_path = study, None, None
        self.scene.show_study(study)
        self.study_label.setText(study.describe())
        self.frames = study.frame_choices()
        self.frame_combo.blockSignals(True)
        self.frame_combo.clear()
        for text, _ in self.frames:
            self.frame_combo.addItem(text)
        self.frame_combo.setCurrentIndex(0)
        self.frame_combo.blockSignals(False)
        self._frame_changed()
        self.measures_label.setText("")
        self.message_label.setText(f"Loaded {study.image_id}. Choose the frame and press Segment.")

    def _frame_changed(self) -> None:
        if self.study is not None:
            self.scene.show_frame(self.study, self.selected_frame())

    def segment(self) -> None:
        study, frame = self.study, self.selected_frame()
        skip = self.skip_outside_check.isChecked() and self.skip_outside_check.isEnabled()

        def work(job: Job) -> Tuple[Study, str]:
            target = self.session.frame_study(study, frame, job.report) if study.is_cine and frame else study
            job.check_cancelled()
            return target, self.session.segment(target, job.report, empty_outside_lv=skip)

        self._run("segment", work, self._segmented, f"Segmenting {study.image_id} ...")

    def propagate(self) -> None:
        study, target = self.study, self.target
        # The frame just labelled here, if any; otherwise the server picks the cine's labelled frame (ED first).
        source = target.image_id if target is not None and target.info.get("source_image") == study.image_id else None
        self._run("propagate", lambda job: (study, self.session.propagate(study, job.report, source=source)),
                  self._propagated, f"Propagating the labelled frame of {study.image_id} ...")

    def _propagated(self, result: Tuple[Study, str]) -> None:
        self._segmented(result)
        self.message_label.setText("Every frame now has a label carried from the labelled frame: check ES (and any "
                                   "other frame), correct it with the Segment Editor, then press Submit label.")

    def _segmented(self, result: Tuple[Study, str]) -> None:
        self.target, self.label_path = result
        self.scene.show_segmentation(self.target, self.label_path)
        self.measures_label.setText(label_summary(self.label_path))
        for listener in self.segmented_listeners:
            listener(self.target)
        self.message_label.setText("Correct the segments with the Segment Editor, then press Submit label.")

    def submit(self) -> None:
        problem = self.session.settings.problems()
        if problem:
            self.message_label.setText(problem)
            return
        target = self.target
        out = os.path.join(self.session.workdir, f"{target.image_id}_final.nii.gz")
        path = self.scene.export_label(target, out)
        self.measures_label.setText(label_summary(path))
        self._run("submit", lambda job: self.session.submit(target, path, job.report), self._submitted,
                  f"Submitting the label of {target.image_id} ...")

    def _submitted(self, result: object) -> None:
        s = self.session.settings
        self.message_label.setText(f"Submitted {self.target.image_id} as a final label by {s.annotator} ({s.expertise}).")
        self.label_path = None
        for listener in self.submitted_listeners:
            listener(self.target)
        if self.strategy_combo.count() and self.ask("Label submitted", "Load the next study?"):
            self.next_study()
