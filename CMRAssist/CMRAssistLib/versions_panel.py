"""Versions panel: every annotator's label of the current study, side by side; reviewers accept one or merge them."""

import time
from typing import Any, Callable, Dict, List, Optional

from .annotation import AnnotationSession, LabelFile, Study
from .background import BackgroundRunner, Job
from .qt_compat import QAbstractItemView, QHBoxLayout, QPushButton, QTableWidget, QVBoxLayout, QWidget
from .scene import SceneAdapter, Steps
from .widgets import JobPanel, RoleGate, add_busy_row, fill_table

COLUMNS = ("Version", "Annotator", "Expertise", "Submitted", "Source", "Final")


def version_rows(listing: Dict[str, Any]) -> List[List[str]]:
    """Table rows (oldest first) of a ``GET /versions/{image}`` answer; the accepted one is marked."""
    rows = []
    for v in listing.get("versions", []):
        when = v.get("submitted_at") or time.strftime("%Y-%m-%d %H:%M", time.localtime(float(v.get("created") or 0)))
        rows.append(
            [
                v["id"],
                str(v.get("annotator", "")),
                str(v.get("expertise", "")),
                str(when),
                str(v.get("source", "")),
                "accepted" if v["id"] == listing.get("accepted") else "",
            ]
        )
    return rows


class VersionsPanel(JobPanel):
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session (reviewer = the connected user).
        runner: runs server calls off the GUI thread.
        scene: shows a chosen version as the study's segmentation.
    """

    failure_prefix = "Versions request failed"

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, scene: SceneAdapter):
        self.session = session
        self.runner = runner
        self.scene = scene
        self.study: Optional[Study] = None
        self.listing: Dict[str, Any] = {}
        self.job: Optional[Job] = None
        self.gate = RoleGate()
        self._build()
        self._connect()
        self._update_buttons()

    def _build(self) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistVersionsPanel"
        layout = QVBoxLayout(self.widget)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setToolTip("Each annotator's label of this study; the accepted one is the final label")
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.show_button = QPushButton("Show")
        self.show_button.setToolTip("Load the selected version as the segmentation")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "Show the selected version as outlines beside the segmentation (one layer per "
            "version, so several annotators' labels can be seen together)"
        )
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Make the selected version the final label (you are recorded as the reviewer)")
        self.consensus_button = QPushButton("Consensus")
        self.consensus_button.setToolTip(
            "Merge every submitted version with STAPLE and make the result the final label"
        )
        for button in (
            self.refresh_button,
            self.show_button,
            self.compare_button,
            self.accept_button,
            self.consensus_button,
        ):
            row.addWidget(button)
        layout.addLayout(row)
        self.gate.add(self.accept_button, "reviewer", "accept a version")
        self.gate.add(self.consensus_button, "reviewer", "build a consensus")
        layout.addWidget(self.gate.label)
        self.progress_bar, self.cancel_button, self.message_label = add_busy_row(layout)

    def _connect(self) -> None:
        self.refresh_button.clicked.connect(lambda *_: self.refresh())
        self.show_button.clicked.connect(lambda *_: self.show_selected())
        self.compare_button.clicked.connect(lambda *_: self.compare_selected())
        self.accept_button.clicked.connect(lambda *_: self.accept_selected())
        self.consensus_button.clicked.connect(lambda *_: self.consensus())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.table.currentCellChanged.connect(lambda *_: self._update_buttons())

    def selected(self) -> Optional[str]:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        return item.text() if item is not None else None

    def _update_buttons(self) -> None:
        idle = self.job is None and self.study is not None
        chosen = idle and self.selected() is not None
        self.refresh_button.enabled = idle
        self.show_button.enabled = chosen
        self.compare_button.enabled = chosen
        self.accept_button.enabled = chosen
        submitted = [v for v in self.listing.get("versions", []) if v["id"] != "consensus"]
        self.consensus_button.enabled = idle and len(submitted) >= 2
        self.cancel_button.enabled = self.job is not None
        self.gate.apply()

    # -- listeners --------------------------------------------------------------------------------------------
    def server_changed(self, state) -> None:
        """Connection panel listener: only reviewers accept versions and build consensus."""
        self.gate.set_account(state.account)

    def _forget_study(self) -> None:
        self.study, self.listing = None, {}
        self.table.setRowCount(0)

    def study_changed(self, study: Study) -> None:
        """Annotate panel listener (a study was segmented or submitted): list its versions."""
        self.study = None if study.is_cine else study
        self.listing = {}
        self.table.setRowCount(0)
        if self.study is not None:
            self.refresh()
        self._update_buttons()

    # -- work -------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        study = self.study
        self._call(
            "versions",
            "label_versions",
            study,
            on_done=self._listed,
            text=f"Reading the label versions of {study.image_id} ...",
        )

    def _listed(self, listing: Dict[str, Any]) -> None:
        self.listing = listing
        rows = version_rows(listing)
        fill_table(self.table, rows)
        accepted = listing.get("accepted")
        self.message_label.text = f"{len(rows)} version(s)" + (
            f"; final = {accepted}" if accepted else "; none accepted yet (the latest submission is final)"
        )

    def show_selected(self) -> None:
        study = self.study
        self._load_version(self.selected(), lambda label: self.scene.show_segmentation(study, label))

    def compare_selected(self) -> None:
        study, version = self.study, self.selected()
        author = (
            next((v.get("annotator") for v in self.listing.get("versions", []) if v["id"] == version), "") or version
        )
        name = f"{study.image_id} {version} ({author})"
        self._load_version(version, lambda label: self.scene.compare_segmentation(study, name, label))

    def _load_version(self, version: str, show: Callable[[LabelFile], Steps]) -> None:
        """Download a version in the worker, then put it in the scene with ``show``'s steps."""
        self._call(
            "version-load",
            "version_for_viewer",
            self.study,
            version,
            on_done=lambda label: self._steps(
                "version-show", show(label), lambda _: None, f"Showing version {version} ..."
            ),
            text=f"Loading version {version} ...",
        )

    def accept_selected(self) -> None:
        study, version = self.study, self.selected()
        self._call(
            "version-accept",
            "accept_version",
            study,
            version,
            on_done=self._listed,
            text=f"Accepting {version} as the final label ...",
        )

    def consensus(self) -> None:
        self._call(
            "version-consensus",
            "build_consensus",
            self.study,
            on_done=self._listed,
            text="Building the STAPLE consensus ...",
        )
