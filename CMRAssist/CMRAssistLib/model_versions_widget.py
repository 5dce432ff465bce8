"""The published versions of one model, newest first, with what each was trained on; an earlier one can be served."""

import time
from typing import Any, Dict, List, Optional

from CMRAssistCore.progress import metric_name

from .annotation import AnnotationSession
from .background import BackgroundRunner
from .qt_compat import QAbstractItemView, QHBoxLayout, QLabel, QPushButton, QTableWidget, QVBoxLayout, QWidget
from .widgets import RoleGate, fill_table

VERSION_COLUMNS = ("Version", "Served", "Trained (UTC)", "Epochs", "Validation", "Trained on")


def figures(values: Dict[str, Any]) -> str:
    """``LV 0.912, MYO 0.850`` from a record's or an epoch's validation figures."""
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, float))


def version_rows(versions: List[Dict[str, Any]]) -> List[List[str]]:
    """Table rows of ``GET /model_versions/{model}``, newest first: what each version was trained on and how it did."""
    rows = []
    for v in reversed(versions):
        record = v.get("record") or {}
        options = record.get("options") or {}
        trained = record.get("trained_at")
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(trained)) if isinstance(trained, (int, float)) else ""
        shown = figures(record.get("val") or {})
        if isinstance(record.get("score"), float):
            shown = f"{metric_name(record.get('metric'))} {record['score']:.3f}" + (f" ({shown})" if shown else "")
        on = [f"{options[k]}" for k in ("labels", "loss", "network") if options.get(k)]
        on += [f"+ {k.replace('_', ' ')}" for k in ("propagated", "cam_prior") if options.get(k) is True]
        rows.append(
            [v["version"], "yes" if v.get("current") else "", when, str(record.get("epochs", "")), shown, " ".join(on)]
        )
    return rows


class ModelVersionsWidget:
    """A table of a model's versions with *Refresh versions* and *Serve this version*.

    Args:
        session: the annotation session.
        runner: runs the server calls in the worker process.
        report: shows a one-line message (the Train panel's status line).
        gate: the role gate of the panel it sits in (serving a version needs the admin role).
    """

    def __init__(
        self, session: AnnotationSession, runner: BackgroundRunner, report=None, gate: Optional[RoleGate] = None
    ):
        self.session = session
        self.runner = runner
        self.report = report or (lambda text: None)
        self.gate = gate if gate is not None else RoleGate()
        self.model = "segmentation"
        self.versions: List[Dict[str, Any]] = []
        self.connected = False
        self.training = False
        self._build()
        self._connect()
        self._update_buttons()

    def _build(self) -> None:
        self.widget = QWidget()
        layout = QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Published versions (newest first):"))
        self.table = QTableWidget(0, len(VERSION_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(VERSION_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.minimumHeight = 110
        self.table.toolTip = "Published versions of the model, newest first"
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh versions")
        self.serve_button = QPushButton("Serve this version")
        self.serve_button.toolTip = "Make the selected version the served model again"
        row.addWidget(self.refresh_button)
        row.addWidget(self.serve_button)
        layout.addLayout(row)
        self.gate.add(self.serve_button, "admin", "serve a model version")

    def _connect(self) -> None:
        self.refresh_button.clicked.connect(lambda *_: self.refresh())
        self.serve_button.clicked.connect(lambda *_: self.serve_selected())
        self.table.currentCellChanged.connect(lambda *_: self._update_buttons())

    def set_state(self, *, connected: bool, training: bool) -> None:
        self.connected, self.training = connected, training
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.refresh_button.enabled = self.connected
        self.serve_button.enabled = self.connected and not self.training and self.selected_version() is not None
        self.gate.apply()

    def selected_version(self) -> Optional[str]:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        return item.text() if item is not None else None

    def show_model(self, model: str) -> None:
        """List ``model``'s versions (the table empties at once: the old rows belong to another model)."""
        self.model = model
        self.versions = []
        self.table.setRowCount(0)
        self.refresh()

    def refresh(self) -> None:
        if self.connected and not self.runner.busy("model-versions"):
            self.runner.submit(
                "model-versions",
                self.session,
                "model_versions",
                self.model,
                on_done=self._listed,
                on_error=self._failed,
            )

    def _listed(self, versions: List[Dict[str, Any]]) -> None:
        self.versions = versions
        fill_table(self.table, version_rows(versions))
        self._update_buttons()

    def serve_selected(self) -> None:
        model, version = self.model, self.selected_version()
        if not version:
            return
        self.serve_button.enabled = False
        self.report(f"Serving {model} version {version} ...")
        self.runner.submit(
            "model-current",
            self.session,
            "make_model_current",
            model,
            version,
            on_done=lambda _: self._served(model, version),
            on_error=self._failed,
        )

    def _served(self, model: str, version: str) -> None:
        self.report(f"{model} version {version} is served now.")
        self.refresh()

    def _failed(self, error: BaseException) -> None:
        self.report(f"Model versions: {error}")
        self._update_buttons()
