"""The Slicer module's panels as real widgets (PySide6 offscreen, under PythonQt's property rules), driven by
clicks and keys against a real server; their work runs in worker processes as in Slicer."""

import json

import numpy as np
import SimpleITK as sitk
from file_scene import FileScene
from panel_helpers import annotate_panel, click, connect, screenshot, wait_for

from CMRAssistCore.labels import RV_CAVITY
from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.client import CMRAssistClient
from CMRAssistLib.connection_panel import ConnectionPanel
from CMRAssistLib.settings import UserSettings, load_settings
from CMRAssistLib.train_panel import TrainPanel


def datastore(server) -> dict:
    return json.loads(server.datastore_json())["objects"]


def test_connection_panel_shows_the_server_and_keeps_settings(app, runner, store, trained_server, tmp_path):
    session, panel = connect(app, runner, store, trained_server.url, tmp_path, expertise="expert")
    text = panel.status_label.text
    assert "model segmentation: trained" in text and "validation Dice" in text
    assert panel.state.strategies and "random" in panel.state.strategies
    # A server on loopback without accounts has no sign-in: the typed name is the annotator's, and editable.
    assert panel.account_label.text.startswith("Sign-in is off on this server") and not panel.state.account.signed_in
    assert not panel.annotator_edit.readOnly and panel.expertise_combo.enabled and session.settings.token == ""
    saved = load_settings(store)
    assert (saved.server_url, saved.annotator, saved.expertise) == (trained_server.url, "Dr Ada", "expert")
    again = ConnectionPanel(AnnotationSession(UserSettings(), str(tmp_path / "w2")), runner, settings_store=store)
    assert again.url_edit.text == trained_server.url and again.expertise_combo.currentText == "expert"
    screenshot(panel.widget, "connection_panel.png")


def test_a_stopped_server_gives_a_readable_message(app, runner, store, tmp_path):
    from cmrassist_server.launcher import free_port

    _, panel = connect(app, runner, store, f"http://127.0.0.1:{free_port()}", tmp_path)
    text = panel.status_label.text
    assert text.startswith("Not connected: cannot reach server at http://127.0.0.1:")
    assert "Traceback" not in text and panel.state is None
    screenshot(panel.widget, "connection_panel_server_down.png")


def test_next_study_segment_correct_submit(app, runner, store, trained_server, tmp_path):
    scene = FileScene()
    session, panel, asked = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False])
    assert not panel.segment_button.enabled and not panel.submit_button.enabled
    panel.strategy_combo.currentIndex = panel.strategy_combo.findText("random")
    click(panel.next_button)
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the next study")
    assert scene.study.image_id == panel.study.image_id and panel.study.image_id in panel.study_label.text
    while panel.study.is_cine:  # this test wants a single frame; the cine has its own test
        click(panel.next_button)
        wait_for(app, lambda: panel.job is None, what="the next study")
    click(panel.segment_button)
    wait_for(app, lambda: panel.label is not None and panel.job is None, what="the segmentation")
    assert scene.label.GetSize() == sitk.ReadImage(panel.study.path).GetSize()
    assert "LV cavity" in panel.measures_label.text and " ml" in panel.measures_label.text

    def erase_rv_on_first_slice(array):
        array[0][array[0] == RV_CAVITY] = 0

    corrected = scene.correct(erase_rv_on_first_slice)
    screenshot(panel.widget, "annotate_panel.png")
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label is None and asked, what="the submission")
    assert "Submitted" in panel.message_label.text and asked == ["Load the next study?"]
    client = CMRAssistClient(trained_server.url)
    info = client.image_info(panel.target.image_id)
    stored = client.download_label(panel.target.image_id, str(tmp_path))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(stored)), corrected)
    labels = datastore(trained_server)[panel.target.image_id]["labels"]
    assert labels["final"]["info"]["annotator"] == "Dr Ada" and labels["final"]["info"]["expertise"] == "non-expert"
    assert info  # the image is still there, unchanged


def test_cine_frame_is_segmented_and_stored_as_its_own_study(app, runner, store, trained_server, tmp_path):
    scene = FileScene()
    session, panel, _ = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False, False])
    panel._call("open", "open_study", "phantom040_cine", on_done=panel._study_loaded, text="opening")
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the cine")
    texts = [panel.frame_combo.itemText(i) for i in range(panel.frame_combo.count)]
    assert (
        texts[0].startswith("ED (frame 1)") and texts[1].startswith("ES (frame") and texts[-1].startswith("whole cine")
    )
    es = panel.study.es_frame
    panel.frame_combo.currentIndex = 1
    assert scene.frame == es
    click(panel.segment_button)
    wait_for(app, lambda: panel.label is not None and panel.job is None, what="the frame segmentation")
    assert panel.target.image_id == f"phantom040_cine_frame{es:02d}"
    assert scene.label.GetDimension() == 3
    info = CMRAssistClient(trained_server.url).image_info(panel.target.image_id)
    assert info["frame"] == es and info["phase"] == "ES" and info["source_image"] == "phantom040_cine"
    screenshot(panel.widget, "annotate_panel_cine.png")
    # Label one frame, propagate it to every frame: a 4D label whose source frame is the submitted one.
    assert panel.propagate_button.enabled
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label is None, what="the frame submission")
    submitted = sitk.GetArrayFromImage(scene.label)
    click(panel.propagate_button)
    wait_for(app, lambda: panel.job is None and panel.label is not None, timeout=300, what="the propagation")
    assert panel.target.image_id == "phantom040_cine" and scene.label.GetDimension() == 4
    propagated = sitk.GetArrayFromImage(scene.label)
    assert np.array_equal(propagated[es - 1], submitted) and all(f.any() for f in propagated)
    assert "propagated" in datastore(trained_server)["phantom040_cine"]["labels"]
    # The whole cine: a 4D segmentation, submitted as the cine's own label.
    panel.frame_combo.currentIndex = panel.frame_combo.count - 1
    assert scene.frame is None
    click(panel.segment_button)
    wait_for(
        app, lambda: panel.job is None and panel.target.image_id == "phantom040_cine", what="the cine segmentation"
    )
    assert scene.label.GetDimension() == 4 and scene.label.GetSize() == sitk.ReadImage(panel.study.path).GetSize()
    click(panel.submit_button)
    wait_for(app, lambda: panel.job is None and panel.label is None, what="the cine submission")
    stored = datastore(trained_server)["phantom040_cine"]["labels"]
    assert stored["final"]["info"]["annotator"] == "Dr Ada"


def test_scene_volume_is_uploaded_only_after_consent(app, runner, store, trained_server, tmp_path):
    from cine_phantom import write_cine

    from CMRAssistLib.frames import write_frame

    path = write_frame(write_cine(str(tmp_path), frames=2)[0], 0, str(tmp_path / "local.nii.gz"))
    scene = FileScene({"Local SAX stack": path})
    session, panel, asked = annotate_panel(app, runner, store, trained_server.url, tmp_path, scene, [False, True])
    before = set(datastore(trained_server))
    click(panel.use_volume_button)
    assert "Not uploaded" in panel.message_label.text and len(asked) == 1
    assert set(datastore(trained_server)) == before
    click(panel.use_volume_button)
    wait_for(app, lambda: panel.study is not None and panel.job is None, what="the upload")
    assert panel.study.image_id == "Local_SAX_stack" and len(asked) == 2
    assert "Local_SAX_stack" in datastore(trained_server)
    # Consent is remembered for this server: no third question.
    panel._upload_consent()
    assert len(asked) == 2


def test_train_button_starts_training_progress_moves_and_stop_stops(app, runner, store, fresh_server, tmp_path):
    session, connection = connect(app, runner, store, fresh_server.url, tmp_path)
    assert "model segmentation: not trained yet" in connection.status_label.text
    panel = TrainPanel(session, runner, poll_ms=300)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)
    assert panel.start_button.enabled and not panel.stop_button.enabled
    models = [panel.model_combo.itemText(i) for i in range(panel.model_combo.count)]
    assert models == ["qc", "segmentation", "slice_position"] and panel.model_combo.currentText == "segmentation"
    # The choices are the server's own (GET /info/), default first, in the server's order.
    config = CMRAssistClient(fresh_server.url).info()["trainers"]["segmentation"]["config"]
    options = panel.option_widgets
    assert {"labels", "loss", "network", "non_expert_weight", "propagated", "cam_prior"} <= set(options)
    for name in ("labels", "loss", "network"):
        assert [options[name].itemText(i) for i in range(options[name].count)] == config[name]
    panel.minutes_spin.value = 1.0
    options["loss"].currentIndex = config["loss"].index("mae_dice")
    chosen = panel.choices()
    assert chosen["loss"] == "mae_dice" and chosen["labels"] == config["labels"][0] and chosen["propagated"] is False
    versions = panel.versions
    assert versions.table.rowCount == 0 and not versions.serve_button.enabled
    click(panel.start_button)
    wait_for(
        app,
        lambda: panel.last_status is not None and panel.last_status.running and panel.progress_bar.value > 0,
        timeout=180,
        what="training progress",
    )
    wait_for(app, lambda: "validation Dice" in panel.status_label.text, timeout=180, what="a validation Dice")
    screenshot(panel.widget, "train_panel.png")
    click(panel.stop_button)
    wait_for(
        app,
        lambda: panel.last_status is not None and not panel.last_status.running,
        timeout=60,
        what="training to stop",
    )
    assert panel.start_button.enabled and not panel.stop_button.enabled
    assert panel.last_status.state in ("STOPPED", "DONE")
    record = CMRAssistClient(fresh_server.url).info()["models"]["segmentation"]["model_record"]
    assert record["options"]["loss"] == "mae_dice"  # the published model says what it was trained with
    # The model versions table lists the published model, served, with what it was trained on.
    wait_for(app, lambda: versions.table.rowCount >= 1, timeout=30, what="the model versions")
    assert versions.table.item(0, 1).text() == "yes" and "mae_dice" in versions.table.item(0, 5).text()
    versions.table.setCurrentCell(0, 0)
    assert versions.serve_button.enabled
    screenshot(panel.widget, "train_panel_versions.png")
    panel.model_combo.currentIndex = panel.model_combo.findText("qc")
    assert "loss" not in panel.option_widgets and "cam_prior" not in panel.option_widgets  # segmentation only
    wait_for(
        app,
        lambda: versions.table.rowCount == 0 and not runner.busy("model-versions"),
        timeout=30,
        what="the (empty) QC versions",
    )
