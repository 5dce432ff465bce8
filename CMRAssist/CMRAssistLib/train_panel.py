"""Train panel: start and stop retraining of the server's models (segmentation, QC, slice position), with progress."""

import time
from typing import Any, Dict, List, Optional

from .annotation import AnnotationSession, ServerState
from .background import BackgroundRunner
from CMRAssistCore.progress import metric_name

from .client import TrainStatus
from .qt_compat import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                        QProgressBar, QPushButton, QTableWidget, QTimer, QVBoxLayout, QWidget, prop)
from .widgets import fill_table

#: The server's segmentation train choices (``TrainOptions.labels``, ``.loss`` and ``.network``).
TRAINING_LABELS = ("final", "expert", "non_expert", "all", "consensus")
TRAINING_LOSSES = ("ce_dice", "mae_dice")
TRAINING_NETWORKS = ("unet", "attention_unet")
VERSION_COLUMNS = ("Version", "Served", "Trained (UTC)", "Epochs", "Validation", "Trained on")


def version_rows(versions: List[Dict[str, Any]]) -> List[List[str]]:
    """Table rows of ``GET /model_versions/{model}``, newest first: what each version was trained on and how it did."""
    rows = []
    for v in reversed(versions):
        record = v.get("record") or {}
        options = record.get("options") or {}
        trained = record.get("trained_at")
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(trained)) if isinstance(trained, (int, float)) else ""
        figures = _figures(record.get("val") or {})
        on = [f"{options[k]}" for k in ("labels", "loss", "network") if options.get(k)]
        if options.get("propagated"):
            on.append("+ propagated")
        if options.get("cam_prior"):
            on.append("+ CAM prior")
        rows.append([v["version"], "yes" if v.get("current") else "", when, str(record.get("epochs", "")), figures,
                     " ".join(on)])
    return rows


def _figures(values: Dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, float))


def describe_training(status: TrainStatus) -> str:
    """One line: state, epoch, the latest validation figures and the best value of the deciding one."""
    if status.state == "NONE":
        return status.message or "No training has run yet."
    parts = [status.state.lower() + (f" ({status.model})" if status.model else "")]
    if status.epoch:
        parts.append(f"epoch {status.epoch}" + (f"/{status.max_epochs}" if status.max_epochs else ""))
    if _figures(status.val):
        parts.append(f"validation {_figures(status.val)}")
    if status.best_score is not None:
        parts.append(f"best {metric_name(status.metric)} {status.best_score:.3f}")
    if status.message and not status.running:
        parts.append(status.message)
    return "; ".join(parts)


class TrainPanel:
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session.
        runner: runs the server calls off the GUI thread.
        poll_ms: how often the training state is read while training runs.
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, *, poll_ms: int = 2000):
        self.session = session
        self.runner = runner
        self.last_status: Optional[TrainStatus] = None

        self.widget = QWidget()
        self.widget.setObjectName("CMRAssistTrainPanel")
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.model_combo = QComboBox()
        self.model_combo.addItem("segmentation")
        self.model_combo.setToolTip("segmentation: the LV/MYO/RV model; qc: the model that predicts slice Dice "
                                    "for quality control; slice_position: too basal / in the LV / too apical, "
                                    "trained from the ranked slices and the cut points")
        form.addRow("Model:", self.model_combo)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.5, 24 * 60)
        self.minutes_spin.setDecimals(1)
        self.minutes_spin.setValue(10.0)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setToolTip("Training time budget; the best validation checkpoint is published as it improves")
        form.addRow("Time budget:", self.minutes_spin)
        # Segmentation only: which labels to learn from and the loss (MAE+Dice tolerates non-expert noise).
        self.labels_combo = QComboBox()
        for name in TRAINING_LABELS:
            self.labels_combo.addItem(name)
        self.labels_combo.setToolTip("final: each study's reviewed label; expert / non_expert: that kind of "
                                     "annotator's versions; all: every version, weighted by expertise; consensus: "
                                     "STAPLE consensus versions")
        form.addRow("Labels:", self.labels_combo)
        self.loss_combo = QComboBox()
        for name in TRAINING_LOSSES:
            self.loss_combo.addItem(name)
        self.loss_combo.setToolTip("ce_dice: cross-entropy + Dice; mae_dice: mean absolute error + Dice, robust to "
                                   "noisy (non-expert) labels")
        form.addRow("Loss:", self.loss_combo)
        self.non_expert_spin = QDoubleSpinBox()
        self.non_expert_spin.setRange(0.0, 1.0)
        self.non_expert_spin.setSingleStep(0.1)
        self.non_expert_spin.setValue(1.0)
        self.non_expert_spin.setToolTip("How often slices labelled by non-experts are drawn, relative to experts'")
        form.addRow("Non-expert weight:", self.non_expert_spin)
        self.network_combo = QComboBox()
        for name in TRAINING_NETWORKS:
            self.network_combo.addItem(name)
        self.network_combo.setToolTip("unet: MONAI residual U-Net; attention_unet: MONAI Attention U-Net "
                                      "(a different network trains from scratch)")
        form.addRow("Network:", self.network_combo)
        self.propagated_check = QCheckBox("Add labels propagated across cine frames")
        self.propagated_check.setToolTip("Also learn from frames labelled by the Propagate button (weighted 0.5)")
        form.addRow("", self.propagated_check)
        self.cam_check = QCheckBox("CAM prior channel")
        self.cam_check.setToolTip("Give the network a class-activation map of the slice-position classifier (or of a "
                                  "disease-group classifier) as a second input; helps most with few labels")
        form.addRow("", self.cam_check)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.stop_button = QPushButton("Stop")
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        layout.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status_label = QLabel("Connect to a server to train its model.")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        # Every published version of the chosen model; an earlier one can be served again.
        self.versions_table = QTableWidget(0, len(VERSION_COLUMNS))
        self.versions_table.setHorizontalHeaderLabels(list(VERSION_COLUMNS))
        self.versions_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.versions_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.versions_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.versions_table.verticalHeader().setVisible(False)
        self.versions_table.setMinimumHeight(110)
        self.versions_table.setToolTip("Published versions of the model, newest first")
        layout.addWidget(self.versions_table)
        versions_row = QHBoxLayout()
        self.versions_refresh_button = QPushButton("Refresh versions")
        self.make_current_button = QPushButton("Serve this version")
        self.make_current_button.setToolTip("Make the selected version the served model again")
        versions_row.addWidget(self.versions_refresh_button)
        versions_row.addWidget(self.make_current_button)
        layout.addLayout(versions_row)
        self.versions: List[Dict[str, Any]] = []

        self.poll_timer = QTimer()
        self.poll_timer.setInterval(poll_ms)
        self.poll_timer.timeout.connect(self.poll)
        self.start_button.clicked.connect(lambda *_: self.start())
        self.stop_button.clicked.connect(lambda *_: self.stop())
        self.versions_refresh_button.clicked.connect(lambda *_: self.refresh_versions())
        self.make_current_button.clicked.connect(lambda *_: self.make_selected_current())
        self.model_combo.currentIndexChanged.connect(lambda *_: self._model_changed())
        self.versions_table.currentCellChanged.connect(lambda *_: self._update_version_buttons())
        self.connected = False
        self.running = False
        self._set_running(False, connected=False)

    def _set_running(self, running: bool, connected: bool = True) -> None:
        self.start_button.setEnabled(connected and not running)
        self.stop_button.setEnabled(connected and running)
        self.running = running
        self._update_version_buttons()

    def _model_changed(self) -> None:
        segmentation = str(prop(self.model_combo, "currentText")) == "segmentation"
        for w in (self.labels_combo, self.loss_combo, self.non_expert_spin, self.network_combo, self.propagated_check,
                  self.cam_check):
            w.setEnabled(segmentation)  # the other models have none of these choices
        if self.connected:
            self.refresh_versions()

    def _update_version_buttons(self) -> None:
        connected = self.connected
        self.versions_refresh_button.setEnabled(connected)
        chosen = self.versions_table.currentRow() >= 0 and self.selected_version() is not None
        self.make_current_button.setEnabled(connected and chosen and not self.running)

    def selected_version(self) -> Optional[str]:
        row = self.versions_table.currentRow()
        item = self.versions_table.item(row, 0) if row >= 0 else None
        return item.text() if item is not None else None

    def server_changed(self, state: ServerState) -> None:
        """Connection panel listener: offer the server's trainable models; show and follow its training state."""
        current = str(prop(self.model_combo, "currentText"))
        self.model_combo.clear()
        for name in state.trainers or ["segmentation"]:
            self.model_combo.addItem(name)
        names = state.trainers or ["segmentation"]
        self.model_combo.setCurrentIndex(names.index(current) if current in names else
                                         names.index("segmentation") if "segmentation" in names else 0)
        self.connected = True
        self._show(state.training)
        self._model_changed()

    def choices(self) -> Dict[str, Any]:
        """The segmentation training choices set in the panel (request params)."""
        return {"labels": str(prop(self.labels_combo, "currentText")), "loss": str(prop(self.loss_combo, "currentText")),
                "non_expert_weight": float(prop(self.non_expert_spin, "value")),
                "network": str(prop(self.network_combo, "currentText")),
                "propagated": self.propagated_check.isChecked(), "cam_prior": self.cam_check.isChecked()}

    def start(self) -> None:
        minutes = float(prop(self.minutes_spin, "value"))
        model = str(prop(self.model_combo, "currentText")) or "segmentation"
        extra = self.choices() if model == "segmentation" else {}
        self._set_running(True)
        self.status_label.setText(f"Starting training of {model} for at most {minutes:g} minutes ...")
        self.runner.submit("train-start",
                           lambda job: self.session.start_training(max_minutes=minutes, model=model, **extra),
                           on_done=lambda _: self.poll(), on_error=self._failed)

    def stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopping training ...")
        self.runner.submit("train-stop", lambda job: self.session.stop_training(), on_done=lambda _: self.poll(),
                           on_error=self._failed)

    def poll(self) -> None:
        if not self.runner.busy("train-status"):
            self.runner.submit("train-status", lambda job: self.session.training_status(), on_done=self._show,
                               on_error=self._failed)

    def _show(self, status: TrainStatus) -> None:
        was_running = self.running
        self.last_status = status
        self.progress_bar.setValue(int(round(status.percent)))
        self.status_label.setText(describe_training(status))
        self._set_running(status.running)
        if status.running and not self.poll_timer.isActive():
            self.poll_timer.start()
        elif not status.running:
            self.poll_timer.stop()
            if was_running:
                self.refresh_versions()  # a finished run may have published a version

    # -- model versions ---------------------------------------------------------------------------------------
    def refresh_versions(self) -> None:
        model = str(prop(self.model_combo, "currentText")) or "segmentation"
        if not self.runner.busy("model-versions"):
            self.runner.submit("model-versions", lambda job: self.session.model_versions(model),
                               on_done=self._listed_versions, on_error=self._versions_failed)

    def _listed_versions(self, versions: List[Dict[str, Any]]) -> None:
        self.versions = versions
        rows = version_rows(versions)
        fill_table(self.versions_table, rows)
        self._update_version_buttons()

    def make_selected_current(self) -> None:
        model, version = str(prop(self.model_combo, "currentText")), self.selected_version()
        if not version:
            return
        self.make_current_button.setEnabled(False)
        self.status_label.setText(f"Serving {model} version {version} ...")
        self.runner.submit("model-current", lambda job: self.session.make_model_current(model, version),
                           on_done=lambda _: (self.status_label.setText(f"{model} version {version} is served now."),
                                              self.refresh_versions()),
                           on_error=self._versions_failed)

    def _versions_failed(self, error: BaseException) -> None:
        self.status_label.setText(f"Model versions: {error}")
        self._update_version_buttons()

    def _failed(self, error: BaseException) -> None:
        self.poll_timer.stop()
        self._set_running(False)
        self.status_label.setText(f"Training request failed: {error}")
