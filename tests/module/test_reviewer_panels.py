"""The reviewers' panels (Review, Rank slices, Label versions) as real widgets under PythonQt's property rules,
driven by clicks against a real server; their jobs run in worker processes as in Slicer."""

import numpy as np
import pytest
import SimpleITK as sitk
from file_scene import FileScene
from panel_helpers import annotate_panel, click, connect, screenshot, wait_for
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.client import CMRAssistClient
from CMRAssistLib.settings import UserSettings


def positions_json(label: np.ndarray) -> dict:
    """A ``slice_position`` infer answer for a label: in the LV where it has LV cavity, too basal before, too
    apical after (slice 0 is the base in the phantoms)."""
    lv = [int(k) for k in np.flatnonzero((label == 3).any((1, 2)))]
    slices = [
        {"slice": k, "position": "too_basal" if k < lv[0] else "too_apical" if k > lv[-1] else "in_lv"}
        for k in range(label.shape[0])
    ]
    return {"slices": slices, "in_lv": {"first": lv[0], "last": lv[-1], "count": len(lv)}}


def measures_of(review) -> dict:
    """The measures table as {measure: (raw, QC-corrected)} text."""
    table = review.measures_table
    return {table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount)}


def test_review_panel_flags_a_spoiled_slice_jumps_to_it_and_corrects_the_measures(
    app, runner, store, qc_server, tmp_path
):
    from CMRAssistLib.review_panel import ReviewPanel

    scene = FileScene()
    session, annotate, _ = annotate_panel(app, runner, store, qc_server.url, tmp_path, scene, [False])
    review = ReviewPanel(session, runner, scene)
    review.server_changed(session.server_state())
    annotate.segmented_listeners.append(review.study_segmented)
    annotate.submitted_listeners.append(review.label_submitted)
    assert not review.check_button.enabled  # nothing to check yet
    assert not annotate.skip_outside_check.enabled  # no slice-position model on this server

    client = CMRAssistClient(qc_server.url)
    objects = client.datastore()["objects"]
    study_id = sorted(i for i in objects if i.endswith("_ed") and objects[i].get("labels", {}).get("final"))[0]
    client.quality(study_id[: -len("_ed")] + "_es", label="final")  # the ES frame checked before: EF can be shown
    annotate._study_loaded(session.open_study(study_id))  # as a finished fetch job delivers it
    wait_for(app, lambda: annotate.job is None, what="the study in the scene")
    click(annotate.segment_button)
    wait_for(app, lambda: review.report is not None and review.job is None, what="QC of the prediction")
    assert review.report["label"] == "prediction" and review.slice_table.rowCount == review.report["summary"]["slices"]
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
    wait_for(
        app,
        lambda: review.job is None and review.report is not None and review.report["label"] == "final",
        what="QC of the submitted label",
    )
    top = review.rows[0]
    assert top.slice == mid and top.any_flagged and any("no LV" in r for r in top.reasons)
    measures = measures_of(review)
    raw_edv, corrected_edv = (float(v) for v in measures["LV EDV (ml)"])
    true_edv = review.report["volumes"]["raw"]["lv_cavity_ml"]
    assert raw_edv == pytest.approx(true_edv, abs=0.06) and corrected_edv > raw_edv  # the left-out slice is filled in
    assert measures["LV EF (%)"][0] != "-"  # ED and ES both checked: ejection fraction shown

    rect = review.slice_table.visualItemRect(review.slice_table.item(0, 1))
    QTest.mouseClick(review.slice_table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
    app.processEvents()
    assert scene.shown_slice == (study_id, tuple(float(v) for v in top.center_lps))
    assert f"Slice {mid}" in review.message_label.text
    screenshot(review.widget, "review_panel.png")


def test_rank_panel_orders_submits_and_gets_the_next_batch_and_saves_cut_points(
    app, runner, store, fresh_server, tmp_path
):
    from CMRAssistLib.rank_panel import RankPanel

    session, connection = connect(app, runner, store, fresh_server.url, tmp_path, name="Dr Rank", expertise="expert")
    panel = RankPanel(session, runner)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)
    assert not panel.submit_button.enabled
    click(panel.fetch_button)
    wait_for(app, lambda: panel.batch is not None and panel.job is None, what="the first batch")
    assert panel.slice_list.count == 8 and not panel.slice_list.item(0).icon().isNull()
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
    assert not set(panel.order()) & set(wanted) and "you: 1 batches" in panel.progress_label.text
    client = CMRAssistClient(fresh_server.url)
    assert client.ranking_progress()["annotators"] == {"Dr Rank": {"batches": 1, "expertise": "expert"}}

    panel.basal_spin.setValue(1510)
    panel.apical_spin.setValue(1490)
    click(panel.save_cuts_button)
    wait_for(app, lambda: panel.job is None and "saved" in panel.message_label.text, what="the cut points")
    assert client._json("GET", "/ranking/cut_points") == {"basal_end": 1510.0, "apical_start": 1490.0}
    click(panel.show_cuts_button)
    wait_for(app, lambda: panel.job is None and panel.cut_list.count > 0, what="the slices around the cuts")
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
    assert not panel.refresh_button.enabled  # no study yet
    panel.study_changed(session.open_study(study_id))
    wait_for(app, lambda: panel.job is None and panel.table.rowCount == 3, what="the versions")
    rows = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount)] for r in range(3)]
    assert [r[:3] for r in rows] == [
        ["phantom-generator", "phantom-generator", "expert"],
        ["dr-a", "Dr A", "expert"],
        ["ms-b", "Ms B", "non-expert"],
    ]
    assert "none accepted yet" in panel.message_label.text and panel.consensus_button.enabled
    panel.table.setCurrentCell(1, 0)
    click(panel.show_button)
    wait_for(app, lambda: panel.job is None and scene.label is not None, what="the version shown")
    assert np.array_equal(sitk.GetArrayFromImage(scene.label), sitk.GetArrayFromImage(reference))
    panel.table.setCurrentCell(2, 0)  # Ms B's version, beside Dr A's in the segmentation
    click(panel.compare_button)
    wait_for(app, lambda: panel.job is None and scene.comparisons, what="the version compared")
    assert list(scene.comparisons) == ["phantom012_ed ms-b (Ms B)"]
    assert np.array_equal(
        scene.comparisons["phantom012_ed ms-b (Ms B)"], np.roll(sitk.GetArrayFromImage(reference), 1, axis=2)
    )
    assert np.array_equal(sitk.GetArrayFromImage(scene.label), sitk.GetArrayFromImage(reference))  # still Dr A's
    panel.table.setCurrentCell(1, 0)
    click(panel.accept_button)
    wait_for(app, lambda: panel.job is None and panel.listing.get("accepted") == "dr-a", what="the acceptance")
    assert panel.table.item(1, 5).text() == "accepted" and "final = dr-a" in panel.message_label.text
    assert client.label_info(study_id)["reviewed_by"] == "Prof R"
    click(panel.consensus_button)
    wait_for(app, lambda: panel.job is None and panel.listing.get("accepted") == "consensus", what="the consensus")
    assert panel.table.rowCount == 4
    screenshot(panel.widget, "versions_panel.png")


def test_review_panel_hides_or_greys_the_slices_outside_the_lv(app, runner, qc_server, tmp_path):
    from CMRAssistLib.review_panel import ReviewPanel

    client = CMRAssistClient(qc_server.url)
    objects = client.datastore()["objects"]
    study_id = sorted(i for i in objects if i.endswith("_ed") and objects[i].get("labels", {}).get("final"))[0]
    final = sitk.GetArrayFromImage(sitk.ReadImage(client.download_label(study_id, str(tmp_path))))
    report = client.quality(study_id, label="final")
    review = ReviewPanel(AnnotationSession(UserSettings(qc_server.url), str(tmp_path)), runner, FileScene())
    # With slice positions (the slice_position infer JSON; here: in the LV where the label has LV cavity), slices
    # outside the LV are hidden by default, and greyed and listed last when shown.
    positions = positions_json(final)
    truth = positions["slices"]
    outside = {s["slice"] for s in truth if s["position"] != "in_lv"}
    assert outside  # phantoms have a slice above the base
    review.show_report(report, positions)
    assert review.slice_table.rowCount == len(truth) - len(outside)
    assert not outside & {row.slice for row in review.rows}
    assert "Slice position: slices" in review.summary_label.text and "hidden" in review.summary_label.text
    review.hide_outside_check.click()  # as a click on the box does: toggles it and emits toggled
    wait_for(app, lambda: review.slice_table.rowCount == len(truth), what="outside slices shown again")
    assert {row.slice for row in review.rows[-len(outside) :]} == outside  # last
    last = review.slice_table.item(review.slice_table.rowCount - 1, len(review.rows[0].dice) + 1)
    assert "outside the LV" in last.text() and last.foreground().color().red() == 150
    screenshot(review.widget, "review_panel_positions.png")
