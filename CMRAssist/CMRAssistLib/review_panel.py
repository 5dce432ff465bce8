"""Review panel: QC of the study's segmentation, flagged slices first, jump to them, raw and corrected measures."""

from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote, unquote

from .annotation import AnnotationSession, Study
from .background import BackgroundRunner, Job
from .qt_compat import (
    QAbstractItemView,
    QBrush,
    QCheckBox,
    QColor,
    QComboBox,
    QDesktopServices,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QUrl,
    QVBoxLayout,
    QWidget,
)
from .review import CLASS_COLUMNS, SliceRow, dice_colour, measure_rows, position_text, slice_rows, summary_text
from .scene import SceneAdapter
from .widgets import JobPanel, add_busy_row

LABEL_CHOICES = (("Model prediction", "prediction"), ("Submitted label (final)", "final"))


DIMMED = (150, 150, 150)  # text colour of slices outside the LV


def report_links(server_url: str, image_id: str) -> str:
    """Links to the server's report of a study (``GET /report/{image}``) as HTML and as a one-page PDF."""
    base = f"{server_url.rstrip('/')}/report/{quote(image_id)}"
    return f'Study report: <a href="{base}?format=html">HTML</a> | <a href="{base}?format=pdf">PDF</a>'


def _item(text: str, colour=None, tip: str = "", dimmed: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if tip:
        item.setToolTip(tip)
    if colour is not None and not dimmed:
        item.setBackground(QBrush(QColor(*colour)))
    if dimmed:
        item.setForeground(QBrush(QColor(*DIMMED)))
    return item


class ReviewPanel(JobPanel):
    """Builds and drives the panel's widgets.

    Args:
        session: the annotation session (its client asks the server for QC).
        runner: runs QC requests off the GUI thread.
        scene: the viewer; clicking a slice row shows that slice.
    """

    failure_prefix = "QC failed"

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, scene: SceneAdapter):
        self.session = session
        self.runner = runner
        self.scene = scene
        self.study: Optional[Study] = None
        self.report: Optional[Dict[str, Any]] = None
        self.positions: Optional[Dict[str, Any]] = None
        self.positions_available = False
        self.rows: List[SliceRow] = []
        self.job: Optional[Job] = None
        self.connected = False
        self._build()
        self._connect()
        self._update_buttons()

    def _build(self) -> None:
        self.widget = QWidget()
        self.widget.objectName = "CMRAssistReviewPanel"
        layout = QVBoxLayout(self.widget)
        form = QFormLayout()
        self.label_combo = QComboBox()
        for text, _ in LABEL_CHOICES:
            self.label_combo.addItem(text)
        self.label_combo.setToolTip("Check the model's segmentation, or the label submitted for this study")
        form.addRow("Check:", self.label_combo)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(0.7)
        self.threshold_spin.setToolTip("Slices whose predicted Dice is below this are flagged")
        form.addRow("Flag below Dice:", self.threshold_spin)
        layout.addLayout(form)
        self.hide_outside_check = QCheckBox("Hide slices outside the LV")
        self.hide_outside_check.setToolTip(
            "Slices the slice-position classifier calls too basal or too apical are "
            "left out of the table (shown greyed, last, when not hidden)"
        )
        self.hide_outside_check.setChecked(True)
        layout.addWidget(self.hide_outside_check)
        self.check_button = QPushButton("Check quality")
        self.check_button.setToolTip(
            "Predict each slice's Dice without ground truth, run the rule checks, and "
            "correct the volumes for flagged slices"
        )
        layout.addWidget(self.check_button)
        self.summary_label = QLabel("No study checked yet.")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        # The server's study report (measures against normal ranges, QC, pictures): fetched by the worker (with the
        # API token when signed in, which a browser link would lack), then opened in the system's viewer.
        self.report_label = QLabel("")
        self.report_label.openExternalLinks = False
        self.report_label.linkActivated.connect(self.open_report)
        self.open_file = lambda path: QDesktopServices.openUrl(QUrl.fromLocalFile(path))
        self.report_label.setToolTip("The study report: LV/RV volumes, EF and mass against normal ranges, QC, pictures")
        layout.addWidget(self.report_label)
        self._build_tables(layout)
        self.progress_bar, self.cancel_button, self.message_label = add_busy_row(layout)

    def _build_tables(self, layout: QVBoxLayout) -> None:
        self.slice_table = QTableWidget(0, 2 + len(CLASS_COLUMNS))
        self.slice_table.setHorizontalHeaderLabels(
            ["Slice"] + [short + " Dice" for _, short in CLASS_COLUMNS] + ["Why flagged"]
        )
        self.slice_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.slice_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.slice_table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.slice_table.setToolTip("Flagged slices first; click a row to show that slice")
        self.slice_table.setMinimumHeight(180)
        self.slice_table.verticalHeader().setVisible(False)
        layout.addWidget(self.slice_table)

        self.measures_table = QTableWidget(0, 3)
        self.measures_table.setHorizontalHeaderLabels(["Measure", "Raw", "QC-corrected"])
        self.measures_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.measures_table.setToolTip("Corrected: each flagged slice's areas replaced by its nearest good neighbours'")
        self.measures_table.setMinimumHeight(150)
        self.measures_table.verticalHeader().setVisible(False)
        layout.addWidget(self.measures_table)

    def _connect(self) -> None:
        self.check_button.clicked.connect(lambda *_: self.check())
        self.hide_outside_check.toggled.connect(lambda *_: self._redisplay())
        self.cancel_button.clicked.connect(lambda *_: self.cancel())
        self.slice_table.cellClicked.connect(lambda row, column: self.show_row(row))
        self.slice_table.currentCellChanged.connect(lambda row, *_: self.show_row(row))

    def _redisplay(self) -> None:
        if self.report is not None:
            self.show_report(self.report, self.positions)

    # -- state ------------------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.job is not None
        self.check_button.enabled = self.connected and not busy and self.study is not None
        self.cancel_button.enabled = busy

    def server_changed(self, state) -> None:
        """Connection panel listener."""
        self.connected = True
        self.positions_available = bool(state.models.get("slice_position", {}).get("trained"))
        if not state.models.get("qc", {}).get("trained"):
            self.message_label.text = (
                "The server's QC model is not trained yet: only the rule checks run "
                "(train it with POST /train/qc once labels exist)."
            )
        self._update_buttons()

    def _forget_study(self) -> None:
        self.study, self.rows, self.report = None, [], None
        self.slice_table.setRowCount(0)
        self.measures_table.setRowCount(0)
        self.report_label.text = ""

    def study_segmented(self, study: Study) -> None:
        """Annotate panel listener: a new segmentation is on screen; check the model's prediction at once."""
        self._follow(study, 0)

    def label_submitted(self, study: Study) -> None:
        """Annotate panel listener: the corrected label was stored; check it again and refresh the tables."""
        self._follow(study, 1)

    def _follow(self, study: Study, label_index: int) -> None:
        self.report_label.text = report_links(self.session.client.server_url, study.image_id)
        self.study = None if study.is_cine else study
        if study.is_cine:
            self.message_label.text = "QC checks one frame at a time: segment the ED or ES frame to review it."
            self._update_buttons()
            return
        self.label_combo.currentIndex = label_index
        self.check()

    def selected_label(self) -> str:
        return LABEL_CHOICES[max(0, self.label_combo.currentIndex)][1]

    # -- work -------------------------------------------------------------------------------------------------
    def open_report(self, link: str) -> None:
        """Fetch the report a link names (``.../report/{image}?format=html``) and open the file when it is here."""
        image_id, fmt = unquote(link.split("/report/")[-1].split("?")[0]), link.rsplit("format=", 1)[-1]
        self.message_label.text = f"Fetching the {fmt.upper()} report of {image_id} ..."

        def opened(path: str) -> None:
            self.message_label.text = f"Report: {path}"
            self.open_file(path)

        def failed(error: BaseException) -> None:
            self.message_label.text = f"Report not available: {error}"

        self.runner.submit("report", self.session, "report_file", image_id, fmt, on_done=opened, on_error=failed)

    def check(self) -> None:
        if self.study is None or not self.connected:
            return
        if self.job is not None:
            self.job.cancel()
        study, label, threshold = self.study, self.selected_label(), float(self.threshold_spin.value)
        self._call(
            "qc",
            "review",
            study,
            label,
            threshold,
            self.positions_available,
            on_done=self._checked,
            text=f"Checking {study.image_id} ({label}) ...",
        )

    def _checked(self, result: Tuple[Dict[str, Any], Optional[Dict[str, Any]]]) -> None:
        self.show_report(*result)
        flagged = sum(1 for r in self.rows if r.any_flagged)
        self.message_label.text = (
            f"{flagged} slice(s) to look at; click a row to show it." if flagged else "No slice flagged."
        )

    # -- display ----------------------------------------------------------------------------------------------
    def show_report(self, report: Dict[str, Any], positions: Optional[Dict[str, Any]] = None) -> None:
        """Fill the tables; with ``positions``, slices outside the LV go last, greyed, or are hidden."""
        self.report, self.positions = report, positions
        rows = slice_rows(report, positions)
        hidden = sum(r.outside_lv for r in rows) if self.hide_outside_check.checked else 0
        self.rows = [r for r in rows if not (hidden and r.outside_lv)]
        thresholds = report.get("thresholds", {})
        where = position_text(positions)
        self.summary_label.text = (
            summary_text(report) + (f"\n{where}" if where else "") + (f" {hidden} hidden." if hidden else "")
        )
        table = self.slice_table
        table.blockSignals(True)
        table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            dim = row.outside_lv
            table.setItem(
                r,
                0,
                _item(str(row.slice), dice_colour(None, 0, row.any_flagged) if row.any_flagged else None, dimmed=dim),
            )
            for c, (name, _) in enumerate(CLASS_COLUMNS, start=1):
                dice = row.dice[name]
                colour = dice_colour(dice, float(thresholds.get(name, 0.7)), row.flagged[name])
                table.setItem(r, c, _item("-" if dice is None else f"{dice:.2f}", colour, dimmed=dim))
            why = "; ".join(([f"outside the LV ({row.position.replace('_', ' ')})"] if dim else []) + row.reasons)
            table.setItem(r, len(CLASS_COLUMNS) + 1, _item(why, tip=why, dimmed=dim))
        table.resizeColumnsToContents()
        table.blockSignals(False)
        rows = measure_rows(report)
        self.measures_table.setRowCount(len(rows))
        for r, (name, raw, corrected) in enumerate(rows):
            changed = raw is not None and corrected is not None and abs(raw - corrected) > 0.05
            self.measures_table.setItem(r, 0, _item(name))
            self.measures_table.setItem(r, 1, _item("-" if raw is None else f"{raw:.1f}"))
            self.measures_table.setItem(
                r, 2, _item("-" if corrected is None else f"{corrected:.1f}", (240, 200, 110) if changed else None)
            )
        self.measures_table.resizeColumnsToContents()

    def show_row(self, row: int) -> None:
        """Show the slice of a table row in the slice views."""
        if self.study is not None and 0 <= row < len(self.rows):
            self.scene.show_slice(self.study, self.rows[row].center_lps)
            reasons = "; ".join(self.rows[row].reasons) or "not flagged"
            self.message_label.text = f"Slice {self.rows[row].slice}: {reasons}"
