"""Rank panel: order batches of 8 slice thumbnails from most basal to most apical; reviewers set the cut points."""

import base64
import time
from typing import Any, Dict, List, Optional, Tuple

from .annotation import AnnotationSession
from .background import BackgroundRunner
from .qt_compat import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QIcon,
    QKeySequence,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPixmap,
    QPushButton,
    QSize,
    Qt,
    QVBoxLayout,
    QWidget,
)
from .widgets import JobPanel, RoleGate, add_busy_row

INSTRUCTIONS = (
    "Drag the slices into order from most basal (top left) to most apical (bottom right), or select "
    "one and move it with the arrow buttons (Alt+Left / Alt+Right). Too basal: myocardium around less than half "
    "of the blood pool; too apical: beyond the apex, no LV myocardium."
)


def describe_progress(progress: Dict[str, Any], annotator: str) -> str:
    """One line: slices with enough views, and this annotator's and everyone's batches."""
    mine = (progress.get("annotators") or {}).get(annotator, {}).get("batches", 0)
    everyone = sum(a.get("batches", 0) for a in (progress.get("annotators") or {}).values())
    return (
        f"{progress.get('items_with_enough_views', 0)} of {progress.get('items', 0)} slices seen at least "
        f"{progress.get('min_views', 3)} times; you: {mine} batches, everyone: {everyone}."
    )


def _pixmap(png: bytes) -> QPixmap:
    pixmap = QPixmap()
    pixmap.loadFromData(png)
    return pixmap


class RankPanel(JobPanel):
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session (its settings give the annotator's name and expertise).
        runner: runs the server calls off the GUI thread.
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner):
        self.session = session
        self.runner = runner
        self.batch: Optional[Dict[str, Any]] = None
        self.shown_at = 0.0
        self.job = None
        self.connected = False
        self.gate = RoleGate()
        self._build()
        self._connect()
        self._update_buttons()

    def _build(self) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistRankPanel"
        layout = QVBoxLayout(self.widget)
        hint = QLabel(INSTRUCTIONS)
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.slice_list = QListWidget()
        self.slice_list.setViewMode(QListView.ListMode)  # list mode reorders on drop; flow + wrap make it a grid
        self.slice_list.setFlow(QListView.LeftToRight)
        self.slice_list.setWrapping(True)
        self.slice_list.setResizeMode(QListView.Adjust)
        self.slice_list.setIconSize(QSize(96, 96))
        self.slice_list.setGridSize(QSize(104, 122))
        self.slice_list.setDragDropMode(QAbstractItemView.InternalMove)
        self.slice_list.setDefaultDropAction(Qt.MoveAction)
        self.slice_list.setMinimumSize(QSize(4 * 104 + 24, 2 * 122 + 12))
        layout.addWidget(self.slice_list)
        moves = QHBoxLayout()
        self.earlier_button = QPushButton("< More basal")
        self.earlier_button.setShortcut(QKeySequence("Alt+Left"))
        self.later_button = QPushButton("More apical >")
        self.later_button.setShortcut(QKeySequence("Alt+Right"))
        moves.addWidget(self.earlier_button)
        moves.addWidget(self.later_button)
        layout.addLayout(moves)
        actions = QHBoxLayout()
        self.fetch_button = QPushButton("Get slices")
        self.submit_button = QPushButton("Submit order")
        self.submit_button.setToolTip("Store this order and get the next 8 slices")
        actions.addWidget(self.fetch_button)
        actions.addWidget(self.submit_button)
        layout.addLayout(actions)
        self.progress_label = QLabel("")
        self.progress_label.wordWrap = True
        layout.addWidget(self.progress_label)
        self._build_review(layout)
        for button in (self.fetch_button, self.submit_button, self.earlier_button, self.later_button):
            self.gate.add(button, "annotator", "rank slices")
        self.gate.add(self.show_cuts_button, "reviewer", "see the slices around the cut points")
        self.gate.add(self.save_cuts_button, "reviewer", "set the cut points")
        layout.addWidget(self.gate.label)
        self.progress_bar, self.cancel_button, self.message_label = add_busy_row(layout)

    def _build_review(self, layout: QVBoxLayout) -> None:
        review = QGroupBox("Reviewer: where 'too basal' ends and 'too apical' begins")
        review_layout = QVBoxLayout(review)
        form = QFormLayout()
        self.basal_spin = QDoubleSpinBox()
        self.apical_spin = QDoubleSpinBox()
        for spin, value in ((self.basal_spin, 1700.0), (self.apical_spin, 1300.0)):
            spin.setRange(0.0, 3000.0)
            spin.setDecimals(0)
            spin.setSingleStep(10.0)
            spin.setValue(value)
        form.addRow("Too basal above rating:", self.basal_spin)
        form.addRow("Too apical below rating:", self.apical_spin)
        review_layout.addLayout(form)
        review_buttons = QHBoxLayout()
        self.show_cuts_button = QPushButton("Show slices around the cuts")
        self.save_cuts_button = QPushButton("Save cut points")
        review_buttons.addWidget(self.show_cuts_button)
        review_buttons.addWidget(self.save_cuts_button)
        review_layout.addLayout(review_buttons)
        self.cut_list = QListWidget()
        self.cut_list.setIconSize(QSize(48, 48))
        self.cut_list.setMinimumHeight(160)
        review_layout.addWidget(self.cut_list)
        layout.addWidget(review)

    def _connect(self) -> None:
        self.earlier_button.clicked.connect(lambda *_: self.move_current(-1))
        self.later_button.clicked.connect(lambda *_: self.move_current(+1))
        self.fetch_button.clicked.connect(lambda *_: self.fetch())
        self.submit_button.clicked.connect(lambda *_: self.submit())
        self.show_cuts_button.clicked.connect(lambda *_: self.show_cuts())
        self.save_cuts_button.clicked.connect(lambda *_: self.save_cuts())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())

    # -- state ------------------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.job is not None
        has_batch = self.batch is not None
        for button in (self.earlier_button, self.later_button, self.submit_button):
            button.enabled = self.connected and not busy and has_batch
        for button in (self.fetch_button, self.show_cuts_button, self.save_cuts_button):
            button.enabled = self.connected and not busy
        self.cancel_button.enabled = busy
        self.gate.apply()

    def server_changed(self, state) -> None:
        """Connection panel listener: annotators rank, reviewers also set the cut points."""
        self.connected = True
        self.gate.account = state.account
        self._update_buttons()

    def order(self) -> List[int]:
        """Item ids as now shown, most basal first."""
        return [int(self.slice_list.item(i).data(Qt.UserRole)) for i in range(self.slice_list.count)]

    def move_current(self, step: int) -> None:
        """Move the selected slice one place earlier (more basal, -1) or later (more apical, +1)."""
        row = self.slice_list.currentRow
        target = row + step
        if row < 0 or not 0 <= target < self.slice_list.count:
            return
        item = self.slice_list.takeItem(row)
        self.slice_list.insertItem(target, item)
        self.slice_list.currentRow = target

    # -- work -------------------------------------------------------------------------------------------------
    def fetch(self) -> None:
        problem = self.session.settings.problems()
        if problem:
            self.message_label.text = problem
            return
        self._call("rank-batch", "ranking_next", on_done=self._show_batch, text="Getting 8 slices ...")

    def submit(self) -> None:
        seconds = round(time.time() - self.shown_at, 1)
        self._call(
            "rank-submit",
            "ranking_submit_next",
            self.batch["batch"],
            self.order(),
            seconds,
            on_done=self._show_batch,
            text="Submitting the order ...",
        )

    def _show_batch(self, batch: Dict[str, Any]) -> None:
        self.batch = batch
        self.slice_list.clear()
        for it in batch["items"]:
            item = QListWidgetItem(QIcon(_pixmap(base64.b64decode(it["thumbnail_png"]))), "")
            item.setData(Qt.UserRole, it["id"])
            # Study and slice number only in the tooltip: the order must come from the images, not the numbers.
            item.setToolTip(f"slice #{it['id']}")
            self.slice_list.addItem(item)
        self.shown_at = time.time()
        self.progress_label.text = describe_progress(batch.get("progress") or {}, self.session.settings.annotator)
        self.message_label.text = "Order the slices, then press Submit order."

    def _cuts(self) -> Tuple[float, float]:
        return float(self.basal_spin.value), float(self.apical_spin.value)

    def show_cuts(self) -> None:
        self._call(
            "rank-cuts",
            "ranking_cut_items",
            *self._cuts(),
            on_done=self._show_cut_items,
            text="Loading the slices around the cut points ...",
        )

    def _show_cut_items(self, pairs: List[Tuple[Dict[str, Any], str]]) -> None:
        basal, apical = self._cuts()
        self.cut_list.clear()
        for it, png in pairs:
            side = "too basal" if it["rating"] > basal else "too apical" if it["rating"] < apical else "in the LV"
            text = (
                f"{it['rating']:.0f}  {side}  ({it['image']} slice {it['slice']}, {it['views']} views, "
                f"volatility {it['volatility']:.2f})"
            )
            self.cut_list.addItem(QListWidgetItem(QIcon(_pixmap(base64.b64decode(png))), text))
        self.message_label.text = f"{len(pairs)} slices around the two cut points."

    def save_cuts(self) -> None:
        self._call(
            "rank-save-cuts",
            "ranking_save_cuts",
            *self._cuts(),
            on_done=self._cuts_saved,
            text="Saving the cut points ...",
        )

    def _cuts_saved(self, cuts: Dict[str, float]) -> None:
        self.message_label.text = (
            f"Cut points saved: too basal above {cuts['basal_end']:.0f}, too apical below {cuts['apical_start']:.0f}."
        )
