"""The Slicer module's panels as real PySide6 widgets (offscreen), driven by clicks and keys against a real server."""

import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from CMRAssistLib.annotate_panel import AnnotatePanel  # noqa: E402
from CMRAssistLib.annotation import AnnotationSession  # noqa: E402
from CMRAssistLib.background import BackgroundRunner  # noqa: E402
from CMRAssistLib.client import CMRAssistClient  # noqa: E402
from CMRAssistLib.connection_panel import ConnectionPanel  # noqa: E402
from CMRAssistCore.labels import RV_CAVITY  # noqa: E402
from CMRAssistLib.settings import UserSettings, load_settings  # noqa: E402
from CMRAssistLib.train_panel import TrainPanel  # noqa: E402
from file_scene import FileScene  # noqa: E402

SCREENSHOTS = os.environ.get("CMRASSIST_SCREENSHOTS",
                             os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "screenshots"))


@pytest.fixture(scope="module")
def app():
    app = QApplication.instance() or QApplication([])
    yield app
    # Destroy every widget while the application still exists: left to interpreter exit, PySide6 may crash.
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QApplication.sendPostedEvents(None, 0)
    app.processEvents()


@pytest.fixture()
def store(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture()
def runner(app):
    r = BackgroundRunner(poll_ms=20)
    yield r
    r.shutdown()


def wait_for(app, predicate, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.processEvents()
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def screenshot(widget, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    widget.resize(460, max(widget.sizeHint().height(), 200))
    widget.show()
    QApplication.processEvents()
    assert widget.grab().save(os.path.join(SCREENSHOTS, name))


def click(button):
    assert button.isEnabled(), f"{button.text()} is disabled"
    QTest.mouseClick(button, Qt.LeftButton)


def connect(app, runner, store, url, tmp_path, *, name="Dr Ada", expertise="non-expert"):
    session = AnnotationSession(UserSettings(), str(tmp_path / "work"))
    panel = ConnectionPanel(session, runner, settings_store=store)
    panel.url_edit.clear()
    QTest.keyClicks(panel.url_edit, url)
    panel.annotator_edit.clear()
    QTest.keyClicks(panel.annotator_edit, name)
    panel.expertise_combo.setCurrentIndex(panel.expertise_combo.findText(expertise))
    click(panel.connect_button)
    wait_for(app, lambda: panel.connect_button.isEnabled(), what="the connection answer")
    return session, panel


def test_connection_panel_shows_the_server_and_keeps_settings(app, runner, store, trained_server, tmp_path):
    session, panel = connect(app, runner, store, trained_server.url, tmp_path, expertise="expert")
    text = panel.status_label.text()
    assert "model segmentation: trained" in text and "validation Dice" in text
    assert panel.state.strategies and "random" in panel.state.strategies
    saved = load_settings(store)
    assert (saved.server_url, saved.annotator, saved.expertise) == (trained_server.url, "Dr Ada", "expert")
    again = ConnectionPanel(AnnotationSession(UserSettings(), str(tmp_path / "w2")), runner, settings_store=store)
    assert again.url_edit.text() == trained_server.url and again.expertise_combo.currentText() == "expert"
    screenshot(panel.widget, "connection_panel.png")


def test_a_stopped_server_gives_a_readable_message(app, runner, store, tmp_path):
    from cmrassist_server.launcher import free_port

    _, panel = connect(app, runner, store, f"http://127.0.0.1:{free_port()}", tmp_path)
    text = panel.status_label.text()
    assert text.startswith("Not connected: cannot reach server at http://127.0.0.1:")
    assert "Traceback" not in text and panel.state is None
    screenshot(panel.widget, "connection_panel_server_down.png")


def annotate_panel(app, runner, store, url, tmp_path, scene, answers):
    session, connection = connect(app, runner, store, url, tmp_path)
    asked = []

    def ask(title, question):
        asked.append(question)
        return answers.pop(0)

    panel = AnnotatePanel(session, runner, scene, ask=ask, consent_store=store)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)  # deliver the state to the new listener
    return session, panel, asked


def test_next_study_segment_correct_submit(app, runner, store, trained_server, tmp_path):
    scene = FileScene()
    session, panel, asked = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False])
    assert not panel.segment_button.isEnabled() and not panel.submit_button.isEnabled()
    panel.strategy_combo.setCurrentIndex(panel.strategy_combo.findText("random"))
    click(panel.next_button)
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the next study")
    assert scene.study.image_id == panel.study.image_id and panel.study.image_id in panel.study_label.text()
    while panel.study.is_cine:  # this test wants a single frame; the cine has its own test
        click(panel.next_button)
        wait_for(app, lambda: panel.job is None, what="the next study")
    click(panel.segment_button)
    wait_for(app, lambda: panel.label_path is not None and panel.job is None, what="the segmentation")
    assert scene.label.GetSize() == sitk.ReadImage(panel.study.path).GetSize()
    assert "LV cavity" in panel.measures_label.text() and " ml" in panel.measures_label.text()

    def erase_rv_on_first_slice(array):
        array[0][array[0] == RV_CAVITY] = 0

    corrected = scene.correct(erase_rv_on_first_slice)
    screenshot(panel.widget, "annotate_panel.png")
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label_path is None, what="the submission")
    assert "Submitted" in panel.message_label.text() and asked == ["Load the next study?"]
    client = CMRAssistClient(trained_server.url)
    info = client.image_info(panel.target.image_id)
    stored = client.download_label(panel.target.image_id, str(tmp_path))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(stored)), corrected)
    labels = __import__("json").loads(trained_server.datastore_json())["objects"][panel.target.image_id]["labels"]
    assert labels["final"]["info"]["annotator"] == "Dr Ada" and labels["final"]["info"]["expertise"] == "non-expert"
    assert info  # the image is still there, unchanged


def test_cine_frame_is_segmented_and_stored_as_its_own_study(app, runner, store, trained_server, tmp_path):
    scene = FileScene()
    session, panel, _ = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False, False])
    panel._run("open", lambda job: session.open_study("phantom040_cine", job.report), panel._study_loaded, "opening")
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the cine")
    texts = [panel.frame_combo.itemText(i) for i in range(panel.frame_combo.count())]
    assert texts[0].startswith("ED (frame 1)") and texts[1].startswith("ES (frame") and texts[-1].startswith("whole cine")
    es = panel.study.es_frame
    panel.frame_combo.setCurrentIndex(1)
    assert scene.frame == es
    click(panel.segment_button)
    wait_for(app, lambda: panel.label_path is not None and panel.job is None, what="the frame segmentation")
    assert panel.target.image_id == f"phantom040_cine_frame{es:02d}"
    assert scene.label.GetDimension() == 3
    info = CMRAssistClient(trained_server.url).image_info(panel.target.image_id)
    assert info["frame"] == es and info["phase"] == "ES" and info["source_image"] == "phantom040_cine"
    screenshot(panel.widget, "annotate_panel_cine.png")
    # Label one frame, propagate it to every frame: a 4D label whose source frame is the submitted one.
    assert panel.propagate_button.isEnabled()
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label_path is None, what="the frame submission")
    submitted = sitk.GetArrayFromImage(scene.label)
    click(panel.propagate_button)
    wait_for(app, lambda: panel.job is None and panel.label_path is not None, timeout=300, what="the propagation")
    assert panel.target.image_id == "phantom040_cine" and scene.label.GetDimension() == 4
    propagated = sitk.GetArrayFromImage(scene.label)
    assert np.array_equal(propagated[es - 1], submitted) and all(f.any() for f in propagated)
    assert "propagated" in __import__("json").loads(trained_server.datastore_json())["objects"]["phantom040_cine"]["labels"]
    # The whole cine: a 4D segmentation, submitted as the cine's own label.
    panel.frame_combo.setCurrentIndex(panel.frame_combo.count() - 1)
    assert scene.frame is None
    click(panel.segment_button)
    wait_for(app, lambda: panel.job is None and panel.target.image_id == "phantom040_cine", what="the cine segmentation")
    assert scene.label.GetDimension() == 4 and scene.label.GetSize() == sitk.ReadImage(panel.study.path).GetSize()
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label_path is None, what="the cine submission")
    stored = __import__("json").loads(trained_server.datastore_json())["objects"]["phantom040_cine"]["labels"]
    assert stored["final"]["info"]["annotator"] == "Dr Ada"


def test_scene_volume_is_uploaded_only_after_consent(app, runner, store, trained_server, tmp_path):
    from cmrassist_server.phantoms import make_phantom

    path = str(tmp_path / "local.nii.gz")
    sitk.WriteImage(make_phantom(91, with_cine=False).ed_image, path)
    scene = FileScene({"Local SAX stack": path})
    session, panel, asked = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False, True])
    before = set(__import__("json").loads(trained_server.datastore_json())["objects"])
    click(panel.use_volume_button)
    assert "Not uploaded" in panel.message_label.text() and len(asked) == 1
    assert set(__import__("json").loads(trained_server.datastore_json())["objects"]) == before
    click(panel.use_volume_button)
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the upload")
    assert panel.study.image_id == "Local_SAX_stack" and len(asked) == 2
    assert "Local_SAX_stack" in __import__("json").loads(trained_server.datastore_json())["objects"]
    # Consent is remembered for this server: no third question.
    panel._upload_consent()
    assert len(asked) == 2


def test_train_button_starts_training_progress_moves_and_stop_stops(app, runner, store, fresh_server, tmp_path):
    session, connection = connect(app, runner, store, fresh_server.url, tmp_path)
    assert "model segmentation: not trained yet" in connection.status_label.text()
    panel = TrainPanel(session, runner, poll_ms=300)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    models = [panel.model_combo.itemText(i) for i in range(panel.model_combo.count())]
    assert models == ["qc", "segmentation", "slice_position"] and panel.model_combo.currentText() == "segmentation"
    panel.minutes_spin.setValue(1.0)
    panel.loss_combo.setCurrentIndex(1)  # mae_dice
    assert panel.choices() == {"labels": "final", "loss": "mae_dice", "non_expert_weight": 1.0, "network": "unet",
                               "propagated": False, "cam_prior": False}
    assert panel.versions_table.rowCount() == 0 and not panel.make_current_button.isEnabled()
    click(panel.start_button)
    wait_for(app, lambda: panel.last_status is not None and panel.last_status.running and panel.progress_bar.value() > 0,
             timeout=180, what="training progress")
    wait_for(app, lambda: "validation Dice" in panel.status_label.text(), timeout=180, what="a validation Dice")
    screenshot(panel.widget, "train_panel.png")
    click(panel.stop_button)
    wait_for(app, lambda: panel.last_status is not None and not panel.last_status.running, timeout=60,
             what="training to stop")
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.last_status.state in ("STOPPED", "DONE")
    record = CMRAssistClient(fresh_server.url).info()["models"]["segmentation"]["model_record"]
    assert record["options"]["loss"] == "mae_dice"  # the published model says what it was trained with
    # The model versions table lists the published model, served, with what it was trained on.
    wait_for(app, lambda: panel.versions_table.rowCount() >= 1, timeout=30, what="the model versions")
    assert panel.versions_table.item(0, 1).text() == "yes" and "mae_dice" in panel.versions_table.item(0, 5).text()
    panel.versions_table.setCurrentCell(0, 0)
    assert panel.make_current_button.isEnabled()
    screenshot(panel.widget, "train_panel_versions.png")
    panel.model_combo.setCurrentIndex(panel.model_combo.findText("qc"))
    assert not panel.loss_combo.isEnabled() and not panel.cam_check.isEnabled()  # segmentation-only choices
    wait_for(app, lambda: panel.versions_table.rowCount() == 0, timeout=30, what="the (empty) QC versions")


def test_background_runner_reports_errors_progress_and_cancellation_on_the_gui_thread(app, runner):
    import threading

    events = []
    gui = threading.current_thread()

    def work(job):
        job.report(0.5, "half")
        time.sleep(0.2)
        return 42

    runner.submit("ok", work, on_done=lambda r: events.append(("done", r, threading.current_thread() is gui)),
                  on_error=lambda e: events.append(("error", e)), on_progress=lambda f, t: events.append(("progress", f, t)))
    runner.submit("bad", lambda job: 1 / 0, on_done=lambda r: events.append(("done", r)),
                  on_error=lambda e: events.append(("error", type(e).__name__)))
    slow = runner.submit("slow", lambda job: time.sleep(0.3) or "late", on_done=lambda r: events.append(("done", r)),
                         on_error=lambda e: events.append(("error", type(e).__name__)))
    slow.cancel()
    wait_for(app, lambda: not runner.busy(), timeout=10, what="the jobs")
    assert ("progress", 0.5, "half") in events and ("done", 42, True) in events
    assert ("error", "ZeroDivisionError") in events and ("error", "Cancelled") in events
    assert ("done", "late") not in events


def test_review_panel_flags_a_spoiled_slice_jumps_to_it_and_corrects_the_measures(app, runner, store, qc_server, tmp_path):
    from CMRAssistLib.review_panel import ReviewPanel

    scene = FileScene()
    session, annotate, _ = annotate_panel(app, runner, store, qc_server.url, tmp_path, scene, [False])
    review = ReviewPanel(session, runner, scene)
    review.server_changed(session.server_state())
    annotate.segmented_listeners.append(review.study_segmented)
    annotate.submitted_listeners.append(review.label_submitted)
    assert not review.check_button.isEnabled()  # nothing to check yet
    assert not annotate.skip_outside_check.isEnabled()  # no slice-position model on this server

    client = CMRAssistClient(qc_server.url)
    objects = client.datastore()["objects"]
    study_id = sorted(i for i in objects if i.endswith("_ed") and objects[i].get("labels", {}).get("final"))[0]
    client.quality(study_id[: -len("_ed")] + "_es", label="final")  # the ES frame checked before: EF can be shown
    annotate._finish(annotate._study_loaded, session.open_study(study_id))  # as a finished fetch job delivers it
    click(annotate.segment_button)
    wait_for(app, lambda: review.report is not None and review.job is None, what="QC of the prediction")
    assert review.report["label"] == "prediction" and review.slice_table.rowCount() == review.report["summary"]["slices"]
    flags = [review.rows[r].any_flagged for r in range(len(review.rows))]
    assert flags == sorted(flags, reverse=True)  # flagged rows first

    # Replace the segmentation by the stored final label with one mid-ventricular slice left out, and submit it.
    final = sitk.GetArrayFromImage(sitk.ReadImage(client.download_label(study_id, str(tmp_path))))
    lv_slices = np.flatnonzero((final == 3).any((1, 2)))
    mid = int(lv_slices[len(lv_slices) // 2])

    def spoil(array):
        array[...] = final
        array[mid] = 0

    scene.correct(spoil)
    # The test server's QC model trained for seconds and doubts most slices; a low threshold leaves the flags to
    # the rule checks, which are exact, so the correction is predictable.
    review.threshold_spin.setValue(0.05)
    click(annotate.submit_button)
    wait_for(app, lambda: review.job is None and review.report is not None and review.report["label"] == "final",
             what="QC of the submitted label")
    top = review.rows[0]
    assert top.slice == mid and top.any_flagged and any("no LV" in r for r in top.reasons)
    measures = {review.measures_table.item(r, 0).text(): (review.measures_table.item(r, 1).text(),
                                                          review.measures_table.item(r, 2).text())
                for r in range(review.measures_table.rowCount())}
    raw_edv, corrected_edv = (float(v) for v in measures["LV EDV (ml)"])
    true_edv = review.report["volumes"]["raw"]["lv_cavity_ml"]
    assert raw_edv == pytest.approx(true_edv, abs=0.06) and corrected_edv > raw_edv  # the left-out slice is filled in
    assert measures["LV EF (%)"][0] != "-"  # ED and ES both checked: ejection fraction shown

    rect = review.slice_table.visualItemRect(review.slice_table.item(0, 1))
    QTest.mouseClick(review.slice_table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    app.processEvents()
    assert scene.shown_slice == (study_id, tuple(float(v) for v in top.center_lps))
    assert f"Slice {mid}" in review.message_label.text()
    screenshot(review.widget, "review_panel.png")

    # With slice positions (the slice_position infer JSON, here from the label's true positions), slices outside
    # the LV are hidden by default, and greyed and listed last when shown.
    from cmrassist_server.position import POSITIONS, slice_report
    from cmrassist_server.position_data import positions_from_label

    truth = positions_from_label(final)
    positions = slice_report(np.eye(3)[[POSITIONS.index(p) for p, _ in truth]], np.array([t for _, t in truth]))
    outside = {k for k, (p, _) in enumerate(truth) if p != "in_lv"}
    assert outside  # phantoms have a slice above the base
    review.show_report(review.report, positions)
    assert review.slice_table.rowCount() == len(truth) - len(outside)
    assert not outside & {row.slice for row in review.rows}
    assert "Slice position: slices" in review.summary_label.text() and "hidden" in review.summary_label.text()
    review.hide_outside_check.click()  # as a click on the box does: toggles it and emits toggled
    wait_for(app, lambda: review.slice_table.rowCount() == len(truth), what="outside slices shown again")
    assert {row.slice for row in review.rows[-len(outside):]} == outside  # last
    last = review.slice_table.item(review.slice_table.rowCount() - 1, len(review.rows[0].dice) + 1)
    assert "outside the LV" in last.text() and last.foreground().color().red() == 150
    screenshot(review.widget, "review_panel_positions.png")


def test_rank_panel_orders_submits_and_gets_the_next_batch_and_saves_cut_points(app, runner, store, fresh_server, tmp_path):
    from CMRAssistLib.rank_panel import RankPanel

    session, connection = connect(app, runner, store, fresh_server.url, tmp_path, name="Dr Rank", expertise="expert")
    panel = RankPanel(session, runner)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)
    assert not panel.submit_button.isEnabled()
    click(panel.fetch_button)
    wait_for(app, lambda: panel.batch is not None and panel.job is None, what="the first batch")
    assert panel.slice_list.count() == 8 and not panel.slice_list.item(0).icon().isNull()
    first = panel.order()

    panel.slice_list.setCurrentRow(3)
    click(panel.earlier_button)
    assert panel.order() == first[:2] + [first[3], first[2]] + first[4:]
    panel.widget.show()
    panel.widget.activateWindow()
    assert QTest.qWaitForWindowActive(panel.widget, 5000)  # shortcuts reach only the active window
    panel.slice_list.setFocus()
    panel.slice_list.setCurrentRow(0)
    QTest.keyClick(panel.slice_list, Qt.Key_Right, Qt.AltModifier)  # keyboard move: one place more apical
    # A button shortcut "animates" the click: it lands about 100 ms later.
    wait_for(app, lambda: panel.order()[:2] == [first[1], first[0]], timeout=5, what="the keyboard move")

    # Order the slices by their true level (slice index within each phantom stack runs from base to apex).
    wanted = [i["id"] for i in sorted(panel.batch["items"], key=lambda it: it["slice"] / 20)]
    for target, item_id in enumerate(wanted):
        panel.slice_list.setCurrentRow(panel.order().index(item_id))
        while panel.order().index(item_id) > target:
            click(panel.earlier_button)
    assert panel.order() == wanted
    screenshot(panel.widget, "rank_panel.png")
    old_batch = panel.batch["batch"]
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.batch["batch"] != old_batch, what="the next batch")
    assert not set(panel.order()) & set(wanted) and "you: 1 batches" in panel.progress_label.text()
    client = CMRAssistClient(fresh_server.url)
    assert client.ranking_progress()["annotators"] == {"Dr Rank": {"batches": 1, "expertise": "expert"}}

    panel.basal_spin.setValue(1510)
    panel.apical_spin.setValue(1490)
    click(panel.save_cuts_button)
    wait_for(app, lambda: panel.job is None and "saved" in panel.message_label.text(), what="the cut points")
    assert client._json("GET", "/ranking/cut_points") == {"basal_end": 1510.0, "apical_start": 1490.0}
    click(panel.show_cuts_button)
    wait_for(app, lambda: panel.job is None and panel.cut_list.count() > 0, what="the slices around the cuts")
    assert "views" in panel.cut_list.item(0).text()


def test_versions_panel_lists_authors_accepts_one_and_builds_a_consensus(app, runner, store, fresh_server, tmp_path):
    from CMRAssistLib.versions_panel import VersionsPanel

    client = CMRAssistClient(fresh_server.url)
    study_id = "phantom012_ed"
    reference = sitk.ReadImage(client.download_label(study_id, str(tmp_path)))
    for name, expertise, shift in (("Dr A", "expert", 0), ("Ms B", "non-expert", 1)):
        array = np.roll(sitk.GetArrayFromImage(reference), shift, axis=2)
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(reference)
        path = str(tmp_path / f"{shift}.nii.gz")
        sitk.WriteImage(image, path)
        client.submit_label(study_id, path, annotator=name, expertise=expertise)
    session, _ = connect(app, runner, store, fresh_server.url, tmp_path, name="Prof R", expertise="expert")
    scene = FileScene()
    panel = VersionsPanel(session, runner, scene)
    assert not panel.refresh_button.isEnabled()  # no study yet
    panel.study_changed(session.open_study(study_id))
    wait_for(app, lambda: panel.job is None and panel.table.rowCount() == 3, what="the versions")
    rows = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())] for r in range(3)]
    assert [r[:3] for r in rows] == [["phantom-generator", "phantom-generator", "expert"], ["dr-a", "Dr A", "expert"],
                                     ["ms-b", "Ms B", "non-expert"]]
    assert "none accepted yet" in panel.message_label.text() and panel.consensus_button.isEnabled()
    panel.table.setCurrentCell(1, 0)
    click(panel.show_button)
    wait_for(app, lambda: panel.job is None and scene.label is not None, what="the version shown")
    assert np.array_equal(sitk.GetArrayFromImage(scene.label), sitk.GetArrayFromImage(reference))
    panel.table.setCurrentCell(2, 0)  # Ms B's version, beside Dr A's in the segmentation
    click(panel.compare_button)
    wait_for(app, lambda: panel.job is None and scene.comparisons, what="the version compared")
    assert list(scene.comparisons) == ["phantom012_ed ms-b (Ms B)"]
    assert np.array_equal(scene.comparisons["phantom012_ed ms-b (Ms B)"], np.roll(sitk.GetArrayFromImage(reference), 1, axis=2))
    assert np.array_equal(sitk.GetArrayFromImage(scene.label), sitk.GetArrayFromImage(reference))  # still Dr A's
    panel.table.setCurrentCell(1, 0)
    click(panel.accept_button)
    wait_for(app, lambda: panel.job is None and panel.listing.get("accepted") == "dr-a", what="the acceptance")
    assert panel.table.item(1, 5).text() == "accepted" and "final = dr-a" in panel.message_label.text()
    assert client.label_info(study_id)["reviewed_by"] == "Prof R"
    click(panel.consensus_button)
    wait_for(app, lambda: panel.job is None and panel.listing.get("accepted") == "consensus", what="the consensus")
    assert panel.table.rowCount() == 4
    screenshot(panel.widget, "versions_panel.png")
