"""The Train panel's cohort row (PySide6 under PythonQt's rules) against a real server: the status it reads, and a
refused start shown with the server's reason; the status line for each state of a run."""

from panel_helpers import click, connect, wait_for

from CMRAssistLib.account import Account
from CMRAssistLib.cohort_widget import describe_cohort
from CMRAssistLib.train_panel import TrainPanel


def test_cohort_row_shows_the_servers_answer(app, runner, store, fresh_server, tmp_path):
    session, connection = connect(app, runner, store, fresh_server.url, tmp_path)
    panel = TrainPanel(session, runner, poll_ms=300)
    connection.listeners.append(panel.server_changed)
    connection._connected(connection.state)
    cohort = panel.cohort
    wait_for(app, lambda: cohort.status_label.text == "No cohort run yet.", what="the cohort status")
    assert cohort.start_button.enabled and cohort.frames_combo.currentText == "every frame"
    cohort.frames_combo.currentIndex = 1  # ED and ES
    click(cohort.start_button)
    assert not cohort.start_button.enabled  # no second start while the first is asked for
    wait_for(app, lambda: "failed" in cohort.status_label.text, what="the refusal")
    assert "no segmentation model" in cohort.status_label.text and cohort.start_button.enabled
    # Starting a run is an admin's: signed in as an annotator, the button goes off and says why.
    panel.gate.set_account(Account("Dr A", "annotator", "expert", "local", ["user", "annotator"]))
    assert not cohort.start_button.enabled and "admin" in cohort.start_button.toolTip


def test_cohort_status_line():
    running = {
        "state": "running",
        "progress": {
            "total": 120,
            "done": 30,
            "failed": 2,
            "skipped": 8,
            "remaining": 80,
            "studies_per_s": 0.5,
            "eta_s": 160.0,
        },
    }
    assert describe_cohort(running) == "Cohort run: 40/120 subjects (2 failed), 30.0 studies/min, about 3 min left"
    assert describe_cohort({"state": "running", "progress": {}}) == "Cohort run: starting ..."
    done = {
        "state": "done",
        "progress": {"total": 7, "done": 6, "failed": 1, "skipped": 0},
        "run": {"review_first": "patient042"},
    }
    assert describe_cohort(done) == "Cohort run done: 7/7 subjects (1 failed). Review first: patient042."
    failed = {"state": "failed", "error": "cmrassist analyse: error: cannot join the Ray cluster at h:1"}
    assert describe_cohort(failed).startswith("Cohort run failed: cmrassist analyse: error: cannot join")
    assert describe_cohort({"state": "none"}) == "No cohort run yet."
