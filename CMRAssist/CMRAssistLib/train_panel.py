"""Train panel: start and stop retraining of the server's models (segmentation, QC, slice position), with progress.

The choices offered are the server's own (``GET /info/``: each trainer's ``config`` maps an option to its default,
or to a list of choices with the default first, MONAI Label's convention), so the panel never goes stale.
"""

from typing import Any, Dict, Optional

from CMRAssistCore.progress import metric_name

from .annotation import AnnotationSession, ServerState
from .background import BackgroundRunner
from .client import TrainStatus
from .cohort_widget import CohortWidget
from .model_versions_widget import ModelVersionsWidget, figures
from .qt_compat import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from .widgets import RoleGate

#: Row label and tooltip of the options the panel names in cardiac terms; any other choice the server lists
#: (a list or a yes/no option) is offered under its own name.
OPTION_TEXT = {
    "labels": (
        "Labels:",
        "final: each study's reviewed label; expert / non_expert: that kind of annotator's versions; "
        "all: every version, weighted by expertise; consensus: STAPLE consensus versions",
    ),
    "loss": (
        "Loss:",
        "ce_dice: cross-entropy + Dice; mae_dice: mean absolute error + Dice, robust to noisy (non-expert) labels",
    ),
    "network": (
        "Network:",
        "unet: MONAI residual U-Net; attention_unet: MONAI Attention U-Net (a different network trains from scratch)",
    ),
    "expert_weight": ("Expert weight:", "How often slices labelled by experts are drawn"),
    "non_expert_weight": (
        "Non-expert weight:",
        "How often slices labelled by non-experts are drawn, relative to experts'",
    ),
    "propagated": (
        "Add labels propagated across cine frames",
        "Also learn from frames labelled by the Propagate button",
    ),
    "cam_prior": (
        "CAM prior channel",
        "Give the network a class-activation map of the slice-position classifier "
        "(or of a disease-group classifier) as a second input; helps most with few labels",
    ),
}
#: Set elsewhere in the panel (time budget) or not the annotator's business (device, seed, ...).
HIDDEN_OPTIONS = {"max_minutes", "max_epochs", "device"}


def offered_options(config: Dict[str, Any]) -> Dict[str, Any]:
    """The options of a trainer's ``config`` the panel offers: choices, yes/no options, and the named numbers."""
    return {
        k: v
        for k, v in config.items()
        if k not in HIDDEN_OPTIONS
        and (isinstance(v, (list, bool)) or (k in OPTION_TEXT and isinstance(v, (int, float))))
    }


def describe_training(status: TrainStatus) -> str:
    """One line: state, epoch, the latest validation figures and the best value of the deciding one."""
    if status.state == "NONE":
        return status.message or "No training has run yet."
    parts = [status.state.lower() + (f" ({status.model})" if status.model else "")]
    if status.epoch:
        parts.append(f"epoch {status.epoch}" + (f"/{status.max_epochs}" if status.max_epochs else ""))
    if figures(status.val):
        parts.append(f"validation {figures(status.val)}")
    if status.best_score is not None:
        parts.append(f"best {metric_name(status.metric)} {status.best_score:.3f}")
    if status.message and not status.running:
        parts.append(status.message)
    return "; ".join(parts)


class TrainPanel:
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session.
        runner: runs the server calls in the worker process.
        poll_ms: how often the training state is read while training runs.
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, *, poll_ms: int = 2000):
        self.session = session
        self.runner = runner
        self.last_status: Optional[TrainStatus] = None
        self.configs: Dict[str, Dict[str, Any]] = {}
        self.option_widgets: Dict[str, Any] = {}
        self.connected = False
        self.running = False
        self.gate = RoleGate()
        self._build(poll_ms)
        self._connect()
        self._set_running(False)

    def _build(self, poll_ms: int) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistTrainPanel"
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.model_combo = QComboBox()
        self.model_combo.toolTip = (
            "segmentation: the LV/MYO/RV model; qc: the model that predicts slice Dice for "
            "quality control; slice_position: too basal / in the LV / too apical, trained "
            "from the ranked slices and the cut points"
        )
        form.addRow("Model:", self.model_combo)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.5, 24 * 60)
        self.minutes_spin.decimals = 1
        self.minutes_spin.value = 10.0
        self.minutes_spin.suffix = " min"
        self.minutes_spin.toolTip = "Training time budget; the best validation checkpoint is published as it improves"
        form.addRow("Time budget:", self.minutes_spin)
        layout.addLayout(form)
        self.options_layout = QVBoxLayout()  # the chosen model's options, rebuilt when the model changes
        self.options_host: Optional[QWidget] = None
        layout.addLayout(self.options_layout)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.stop_button = QPushButton("Stop")
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        layout.addLayout(row)
        self.gate.add(self.start_button, "admin", "start training")
        self.gate.add(self.stop_button, "admin", "stop training")
        layout.addWidget(self.gate.label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        layout.addWidget(self.progress_bar)
        self.status_label = QLabel("Connect to a server to train its model.")
        self.status_label.wordWrap = True
        layout.addWidget(self.status_label)
        self.versions = ModelVersionsWidget(self.session, self.runner, report=self._report, gate=self.gate)
        layout.addWidget(self.versions.widget)
        self.cohort = CohortWidget(self.session, self.runner, gate=self.gate)  # a cohort run of every study
        layout.addWidget(self.cohort.widget)
        self.poll_timer = QTimer()
        self.poll_timer.setInterval(poll_ms)

    def _connect(self) -> None:
        self.poll_timer.timeout.connect(self.poll)
        self.start_button.clicked.connect(lambda *_: self.start())
        self.stop_button.clicked.connect(lambda *_: self.stop())
        self.model_combo.currentIndexChanged.connect(lambda *_: self._model_changed())

    def _report(self, text: str) -> None:
        self.status_label.text = text

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.start_button.enabled = self.connected and not running
        self.stop_button.enabled = self.connected and running
        self.versions.set_state(connected=self.connected, training=running)
        self.gate.apply()

    # -- the chosen model's options ---------------------------------------------------------------------------
    def _model_changed(self) -> None:
        model = self.model_combo.currentText
        self._show_options(offered_options(self.configs.get(model, {})))
        if self.connected:
            self.versions.show_model(model)

    def _show_options(self, options: Dict[str, Any]) -> None:
        if self.options_host is not None:
            self.options_host.hide()
            self.options_host.deleteLater()
        self.options_host = QWidget()
        form = QFormLayout(self.options_host)
        form.setContentsMargins(0, 0, 0, 0)
        self.option_widgets = {}
        for name, value in options.items():
            plain = name.replace("_", " ").capitalize()
            text, tip = OPTION_TEXT.get(name, (plain if isinstance(value, bool) else plain + ":", ""))
            widget = _option_widget(value, text)
            widget.toolTip = tip
            self.option_widgets[name] = widget
            if isinstance(widget, QCheckBox):
                form.addRow("", widget)
            else:
                form.addRow(text, widget)
        self.options_layout.addWidget(self.options_host)

    def choices(self) -> Dict[str, Any]:
        """The chosen model's options as set in the panel (request params)."""
        out: Dict[str, Any] = {}
        for name, widget in self.option_widgets.items():
            if isinstance(widget, QCheckBox):
                out[name] = bool(widget.checked)
            elif isinstance(widget, QComboBox):
                out[name] = widget.currentText
            else:
                out[name] = float(widget.value)
        return out

    # -- server -------------------------------------------------------------------------------------------------
    def server_changed(self, state: ServerState) -> None:
        """Connection panel listener: offer the server's trainable models and their options; follow training; admins
        alone start it and serve versions."""
        self.gate.account = state.account
        current = self.model_combo.currentText
        names = state.trainers or ["segmentation"]
        self.configs = dict(state.trainer_configs)
        self.connected = True
        self.cohort.set_connected(True)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for name in names:
            self.model_combo.addItem(name)
        self.model_combo.currentIndex = (
            names.index(current) if current in names else names.index("segmentation") if "segmentation" in names else 0
        )
        self.model_combo.blockSignals(False)
        self._model_changed()
        self._show(state.training)

    def start(self) -> None:
        minutes = float(self.minutes_spin.value)
        model = self.model_combo.currentText or "segmentation"
        self._set_running(True)
        self.status_label.text = f"Starting training of {model} for at most {minutes:g} minutes ..."
        self.runner.submit(
            "train-start",
            self.session,
            "start_training",
            max_minutes=minutes,
            model=model,
            **self.choices(),
            on_done=lambda _: self.poll(),
            on_error=self._failed,
        )

    def stop(self) -> None:
        self.stop_button.enabled = False
        self.status_label.text = "Stopping training ..."
        self.runner.submit(
            "train-stop", self.session, "stop_training", on_done=lambda _: self.poll(), on_error=self._failed
        )

    def poll(self) -> None:
        if not self.runner.busy("train-status"):
            self.runner.submit(
                "train-status", self.session, "training_status", on_done=self._show, on_error=self._failed
            )

    def _show(self, status: TrainStatus) -> None:
        was_running = self.running
        self.last_status = status
        self.progress_bar.value = int(round(status.percent))
        self.status_label.text = describe_training(status)
        self._set_running(status.running)
        if status.running and not self.poll_timer.active:
            self.poll_timer.start()
        elif not status.running:
            self.poll_timer.stop()
            if was_running:
                self.versions.refresh()  # a finished run may have published a version

    def _failed(self, error: BaseException) -> None:
        self.poll_timer.stop()
        self._set_running(False)
        self.status_label.text = f"Training request failed: {error}"


def _option_widget(value: Any, text: str):
    """A combo box for a list of choices (first = default), a check box for yes/no, a spin box for a number."""
    if isinstance(value, list):
        widget = QComboBox()
        for choice in value:
            widget.addItem(str(choice))
        return widget
    if isinstance(value, bool):
        widget = QCheckBox(text)
        widget.checked = value
        return widget
    widget = QDoubleSpinBox()
    widget.setRange(0.0, 100.0)
    widget.singleStep = 0.1
    widget.value = float(value)
    return widget
