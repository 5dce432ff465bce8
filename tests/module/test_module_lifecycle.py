"""The module's lifecycle as Slicer drives it (issue 22): File > Close Scene mid-study on a real MRML scene
(slicer-core), ``cleanup`` releasing every timer and connection, and effects registered after the Segment Editor
was built reaching its list. Panels run under PythonQt's rules (PySide6, ``pythonqt_rules.py``)."""

import logging

import pytest
from panel_helpers import click, type_and_connect, wait_for
from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal
from slicer_app import CoreSlicer

from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.background import BackgroundRunner
from CMRAssistLib.module_panels import ModulePanels
from CMRAssistLib.parameters import ModuleParameters
from CMRAssistLib.settings import UserSettings

pytestmark = pytest.mark.slicer


def _module(app, store, url, tmp_path, core):
    """The module's panels on a slicer-core scene with its parameter node, connected (as ``CMRAssist.py`` builds
    them, then the user presses Connect)."""
    session = AnnotationSession(UserSettings(), str(tmp_path / "work"))
    scene, parameters = core.cmrassist_scene(), ModuleParameters(core.scene)
    panels = ModulePanels(session, BackgroundRunner(), scene, settings_store=store, parameters=parameters)
    type_and_connect(app, panels.connection, url)
    return panels


@pytest.fixture()
def module(app, store, trained_server, tmp_path):
    core = CoreSlicer()
    panels = _module(app, store, trained_server.url, tmp_path, core)
    yield core, panels
    panels.cleanup()
    core.close()


def _idle(app, ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _next_study(app, annotate) -> None:
    """Next study (random), as the user clicks it, until it is loaded."""
    annotate.strategy_combo.currentIndex = annotate.strategy_combo.findText("random")
    click(annotate.next_button)
    wait_for(app, lambda: annotate.study is not None and annotate.job is None, what="the next study")


def test_closing_the_scene_mid_study_leaves_no_button_acting_on_nodes_that_are_gone(app, module):
    core, panels = module
    annotate = panels.annotate
    _next_study(app, annotate)
    while annotate.study.is_cine:
        click(annotate.next_button)
        wait_for(app, lambda: annotate.job is None, what="the next study")
    click(annotate.segment_button)
    wait_for(app, lambda: annotate.label is not None and annotate.job is None, what="the segmentation")
    wait_for(app, lambda: panels.review.job is None and panels.versions.job is None, what="the review")
    assert annotate.submit_button.enabled and panels.review.check_button.enabled
    core.scene.Clear(0)  # what File > Close Scene does
    assert annotate.study is None and annotate.label is None and "scene was closed" in annotate.message_label.text
    for button in (annotate.segment_button, annotate.submit_button, annotate.propagate_button):
        assert not button.enabled, button.text
    assert not panels.review.check_button.enabled and panels.review.slice_table.rowCount == 0
    versions = panels.versions
    for button in (versions.refresh_button, versions.show_button, versions.accept_button, versions.consensus_button):
        assert not button.enabled, button.text
    click(annotate.next_button)  # the way on: load a study again
    wait_for(app, lambda: annotate.study is not None and annotate.job is None, what="a study after the close")
    assert panels.runner.callback_errors == []


def test_cleanup_stops_every_timer_and_the_worker(app, module, caplog):
    _, panels = module
    for timer in panels.timers():
        timer.start()  # a training and a cohort run being polled
    panels.cleanup()
    caplog.set_level(logging.ERROR)
    _idle(app, 4500)  # longer than the cohort's 3 s poll
    assert not [t for t in panels.timers() if t.active]
    assert not panels.runner.worker.running() and panels.runner.callback_errors == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class EffectFactory(QObject):
    """Slicer's ``qSlicerSegmentEditorEffectFactory`` signal (a Qt class slicer-core does not build)."""

    effectRegistered = Signal(str)


class Editor:
    def __init__(self):
        self.updates = 0

    def updateEffectList(self):
        self.updates += 1


def test_effects_registered_after_the_editor_was_built_reach_it_until_cleanup(app, module):
    _, panels = module
    factory, editor = EffectFactory(), Editor()
    panels.follow_effects(factory, editor)
    factory.effectRegistered.emit("Local threshold")
    assert editor.updates == 1
    panels.cleanup()
    factory.effectRegistered.emit("Wrap solidify")
    assert editor.updates == 1


def test_a_scene_volume_that_came_from_the_server_is_opened_there_not_uploaded_again(app, module):
    _, panels = module
    annotate = panels.annotate
    _next_study(app, annotate)
    first = annotate.study.image_id
    annotate.refresh_volumes()
    names = [name for name, _ in annotate.volume_choices]
    annotate.volume_combo.currentIndex = names.index(first)
    assert annotate.use_volume_button.text == "Open on server"
    annotate.ask = lambda *_: pytest.fail("no upload question for a volume the server holds")
    click(annotate.use_volume_button)
    wait_for(app, lambda: annotate.job is None and "Opening" not in annotate.message_label.text, what="the open")
    assert annotate.study.image_id == first and "Failed" not in annotate.message_label.text


def test_the_gui_state_lives_in_the_parameter_node_and_survives_a_reload(app, module, store, trained_server, tmp_path):
    core, panels = module
    annotate, parameters = panels.annotate, ModuleParameters(core.scene)
    _next_study(app, annotate)
    panels.review.threshold_spin.value = 0.8
    study = annotate.study.image_id
    assert (parameters.get("strategy"), parameters.get("study"), parameters.get("qc_threshold")) == (
        "random",
        study,
        0.8,
    )
    panels.cleanup()  # Reload: the widget goes, the scene and its parameter node stay
    again = _module(app, store, trained_server.url, tmp_path / "again", core)
    try:
        wait_for(app, lambda: again.annotate.study is not None and again.annotate.job is None, what="the reopening")
        assert again.annotate.study.image_id == study and again.annotate.strategy_combo.currentText == "random"
        assert again.review.threshold_spin.value == 0.8
        core.scene.Clear(0)  # Close Scene resets the node; the study goes, the user's choices stay
        assert parameters.get("study") is None and parameters.get("strategy") == "random"
        assert parameters.get("qc_threshold") == 0.8
    finally:
        again.cleanup()
