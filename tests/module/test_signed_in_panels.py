"""Signing in from the Slicer module against a real server with local accounts: the Connection panel (token
masked, the account shown), panels enabled by role, labels recorded under the account whatever the panel's name
field says, refusals without tracebacks; the token reaches the worker process on its standard input only."""

import os
import shutil
import time
import urllib.error
import urllib.request

import pytest
from file_scene import FileScene
from panel_helpers import click, connect, screenshot, wait_for
from PySide6.QtWidgets import QLineEdit
from training_wait import wait_training

from CMRAssistLib.annotate_panel import AnnotatePanel
from CMRAssistLib.client import CMRAssistClient, ServerError
from CMRAssistLib.rank_panel import RankPanel
from CMRAssistLib.train_panel import TrainPanel
from CMRAssistLib.versions_panel import VersionsPanel

STUDY = "phantom011_ed"
ACCOUNTS = {"annotator": ("Dr Annot", "non_expert"), "reviewer": ("Dr Review", "expert")}


def _sign_in_required(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/auth/me", timeout=5).read()
    except urllib.error.HTTPError as e:
        return e.code == 401
    return False


@pytest.fixture(scope="module")
def accounts_server(trained_server, phantom_studies, tmp_path_factory):
    """A server of its own (the trained segmentation model, the pristine phantom studies) with an annotator's and
    a reviewer's local account; (server, {role: token})."""
    from cmrassist_server.accounts.store import AccountStore
    from cmrassist_server.launcher import RunningServer

    wait_training(CMRAssistClient(trained_server.url))  # the model folder is copied whole
    root = tmp_path_factory.mktemp("accounts_server")
    studies, model_dir = str(root / "studies"), str(root / "model")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    shutil.copytree(trained_server.model_dir, model_dir)
    srv = RunningServer(studies, model_dir, str(root / "server.log"))
    # Accounts added to the running server, as an admin does with `cmrassist users add`: from then on it asks for
    # sign-in (the launcher's start-up wait reads /info/ without a token).
    store = AccountStore(os.path.join(studies, ".cmrassist", "users.sqlite"))
    tokens = {role: store.add(name, role, expertise) for role, (name, expertise) in ACCOUNTS.items()}
    deadline = time.time() + 30
    while not _sign_in_required(srv.url):
        assert time.time() < deadline, "the server did not start asking for sign-in"
        time.sleep(0.5)
    yield srv, tokens
    srv.stop()


def panels(app, runner, store, url, tmp_path, token, *, name="Somebody Else"):
    """Connection, Annotate, Versions, Rank and Train panels wired as the module wires them, signed in."""
    session, connection = connect(app, runner, store, url, tmp_path, name=name, token=token)
    scene = FileScene()
    built = {
        "annotate": AnnotatePanel(session, runner, scene, ask=lambda title, question: False, consent_store=store),
        "versions": VersionsPanel(session, runner, scene),
        "rank": RankPanel(session, runner),
        "train": TrainPanel(session, runner),
    }
    built["annotate"].submitted_listeners.append(built["versions"].study_changed)
    for panel in built.values():
        connection.listeners.append(panel.server_changed)
    if connection.state is not None:
        connection._connected(connection.state)  # deliver the state to the new listeners
    return session, connection, scene, built


def test_connection_panel_signs_in_with_a_masked_token_and_shows_the_account(
    app, runner, store, accounts_server, tmp_path
):
    server, tokens = accounts_server
    session, panel = connect(app, runner, store, server.url, tmp_path, name="Somebody Else", token=tokens["reviewer"])
    assert panel.token_edit.echoMode == QLineEdit.Password and panel.token_edit.displayText != tokens["reviewer"]
    assert panel.state is not None and panel.state.account.name == "Dr Review"
    assert panel.account_label.text.startswith("Signed in as Dr Review (reviewer, expert; local account).")
    assert "accept label versions" in panel.account_label.text and "train the models" not in panel.account_label.text
    # The name and expertise are the account's, read-only; the session sends them.
    assert panel.annotator_edit.text == "Dr Review" and panel.annotator_edit.readOnly
    assert panel.expertise_combo.currentText == "expert" and not panel.expertise_combo.enabled
    assert (session.settings.annotator, session.settings.expertise) == ("Dr Review", "expert")
    assert "model segmentation: trained" in panel.status_label.text
    assert tokens["reviewer"] not in panel.status_label.text + panel.account_label.text
    screenshot(panel.widget, "connection_panel_signed_in.png")
    # Remembered in the settings for this server: a new panel (next Slicer session) has it.
    from CMRAssistLib.annotation import AnnotationSession
    from CMRAssistLib.connection_panel import ConnectionPanel
    from CMRAssistLib.settings import UserSettings

    again = ConnectionPanel(AnnotationSession(UserSettings(), str(tmp_path / "w2")), runner, settings_store=store)
    assert again.token_edit.text == tokens["reviewer"] and again.remember_check.checked
    again.url_edit.text = "http://127.0.0.1:1"  # another server: the token stays with its own
    again._server_typed()
    assert again.token_edit.text == ""


def test_a_bogus_or_missing_token_gives_a_readable_message(app, runner, store, accounts_server, tmp_path):
    server, _ = accounts_server
    _, panel = connect(app, runner, store, server.url, tmp_path, token="cmra_000000000000_not-a-real-secret")
    text = panel.status_label.text
    assert text.startswith(f"Not connected: sign in: the server at {server.url} did not accept your API token")
    assert "invalid, expired or revoked" in text and "Paste the API token" in text
    assert "Traceback" not in text and panel.state is None and not panel.annotator_edit.readOnly
    _, panel = connect(app, runner, store, server.url, tmp_path / "none", token="")
    assert panel.status_label.text.startswith(f"Not connected: sign in: the server at {server.url} needs an API token")


def test_an_annotator_submits_under_the_account_and_cannot_review_or_train(
    app, runner, store, accounts_server, tmp_path
):
    server, tokens = accounts_server
    session, connection, scene, p = panels(app, runner, store, server.url, tmp_path, tokens["annotator"])
    annotate, versions, rank, train = p["annotate"], p["versions"], p["rank"], p["train"]
    assert connection.state.account.role == "annotator"
    # What the role allows is on, what it does not is off, saying which role it needs.
    assert rank.fetch_button.enabled and annotate.next_button.enabled
    for button in (rank.show_cuts_button, rank.save_cuts_button, train.start_button):
        assert not button.enabled
    assert "needs the reviewer role; your account 'Dr Annot' is annotator" in rank.save_cuts_button.toolTip
    assert "needs the admin role" in train.start_button.toolTip
    assert train.gate.label.text.startswith("To start training or stop training or serve a model version")
    # Segment a study, then claim to be someone else in the name field: the server records the account.
    annotate._call("open", "open_study", STUDY, on_done=annotate._study_loaded, text="opening")
    wait_for(app, lambda: annotate.study is not None and annotate.job is None, what="the study")
    click(annotate.segment_button)
    wait_for(app, lambda: annotate.label is not None and annotate.job is None, what="the segmentation")
    connection.annotator_edit.text = "Impostor"
    session.settings.annotator = "Impostor"  # what the client now sends as the annotator
    click(annotate.submit_button)
    wait_for(app, lambda: annotate.job is None and annotate.label is None, what="the submission")
    assert "Submitted" in annotate.message_label.text
    wait_for(app, lambda: versions.table.rowCount >= 1 and versions.job is None, what="the versions")
    reviewer = CMRAssistClient(server.url, token=tokens["reviewer"])
    listing = reviewer.label_versions(STUDY)
    mine = [v for v in listing["versions"] if v.get("annotator") == "Dr Annot"]
    assert mine and mine[-1]["expertise"] == "non_expert"
    assert not any(v.get("annotator") == "Impostor" for v in listing["versions"])
    # The Versions panel lists it, but only a reviewer accepts.
    versions.table.setCurrentCell(0, 0)
    assert versions.show_button.enabled and not versions.accept_button.enabled
    assert "needs the reviewer role" in versions.accept_button.toolTip
    assert versions.gate.label.text.startswith("To accept a version or build a consensus an account needs the reviewer")
    # Asked anyway (an older panel, a script): a 403 in words, no traceback.
    with pytest.raises(ServerError) as refused:
        session.client.accept_version(STUDY, mine[-1]["id"], "Dr Annot")
    assert refused.value.status == 403
    assert str(refused.value).startswith("your role cannot accept label versions: this needs the reviewer role")


def test_a_reviewer_accepts_under_the_account_and_sets_cut_points_but_cannot_train(
    app, runner, store, accounts_server, tmp_path
):
    server, tokens = accounts_server
    annotator = CMRAssistClient(server.url, token=tokens["annotator"])
    label = annotator.download_label(STUDY, str(tmp_path))
    submitted = annotator.submit_label(STUDY, label, annotator="Anyone", expertise="expert")
    session, connection, _, p = panels(app, runner, store, server.url, tmp_path, tokens["reviewer"])
    versions, rank, train = p["versions"], p["rank"], p["train"]
    for button in (rank.fetch_button, rank.show_cuts_button, rank.save_cuts_button):
        assert button.enabled
    assert not rank.gate.label.text and not versions.gate.label.text
    assert not train.start_button.enabled and "needs the admin role" in train.start_button.toolTip
    assert not train.versions.serve_button.enabled and "needs the admin role" in train.versions.serve_button.toolTip
    versions.study_changed(session.open_study(STUDY))
    wait_for(app, lambda: versions.job is None and versions.listing, what="the versions")
    row = [versions.table.item(r, 0).text() for r in range(versions.table.rowCount)].index(submitted["version"])
    versions.table.setCurrentCell(row, 0)
    assert versions.accept_button.enabled
    session.settings.annotator = "Impostor"  # what the client sends as the reviewer: the server takes the account
    click(versions.accept_button)
    wait_for(app, lambda: versions.job is None and versions.listing.get("final"), what="the acceptance")
    assert versions.listing["accepted"] == submitted["version"]
    assert versions.listing["final"]["reviewed_by"] == "Dr Review"
    assert versions.listing["final"]["annotator"] == "Dr Annot"


def test_the_token_reaches_the_worker_on_its_standard_input_only(app, runner, store, accounts_server, tmp_path):
    server, tokens = accounts_server
    token = tokens["annotator"]
    session, panel = connect(app, runner, store, server.url, tmp_path, token=token)
    panel.refresh()
    process = runner.worker._process  # the connection's one worker, started by the refresh
    assert token not in " ".join([process.program(), *process.arguments()])
    assert not any(token in entry for entry in process.processEnvironment().toStringList())
    wait_for(app, lambda: not runner.busy("connect"), what="the refresh")
    assert panel.state.account.name == "Dr Annot"
    for folder, _, files in os.walk(session.workdir):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert token.encode() not in f.read(), name
