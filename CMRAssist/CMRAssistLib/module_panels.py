"""The module's panels, built and wired once, and their lifecycle: what ``CMRAssist.py`` shows and releases.

Kept apart from the Slicer-bound module file so that the wiring, the reaction to *File > Close Scene* and the
release of every timer at ``cleanup`` are tested as they run (PySide6 under PythonQt's rules, slicer-core scene).
"""

from typing import Any, Callable, List, Tuple

from .annotate_panel import AnnotatePanel
from .annotation import AnnotationSession
from .background import BackgroundRunner
from .connection_panel import ConnectionPanel
from .rank_panel import RankPanel
from .review_panel import ReviewPanel
from .train_panel import TrainPanel
from .versions_panel import VersionsPanel


class ModulePanels:
    """Every panel, listening to each other as the module needs.

    Args:
        session: the annotation session (settings and work folder).
        runner: the background runner (its one worker process serves every panel).
        scene: the scene layer (``slicer_scene.SlicerScene`` in Slicer).
        settings_store: a ``QSettings`` for the connection and the upload consent.
        parameters: the module's parameter node (``parameters.ModuleParameters``): the GUI state kept in the scene.
    """

    def __init__(self, session: AnnotationSession, runner: BackgroundRunner, scene, *, settings_store, parameters=None):
        self.runner, self.scene, self.parameters = runner, scene, parameters
        self.connection = ConnectionPanel(session, runner, settings_store=settings_store)
        self.annotate = AnnotatePanel(session, runner, scene, consent_store=settings_store)
        self.review = ReviewPanel(session, runner, scene)
        self.versions = VersionsPanel(session, runner, scene)
        self.rank = RankPanel(session, runner)
        self.train = TrainPanel(session, runner)
        self.annotate.segmented_listeners += [self.review.study_segmented, self.versions.study_changed]
        self.annotate.submitted_listeners += [self.review.label_submitted, self.versions.study_changed]
        panels = (self.annotate, self.review, self.versions, self.rank, self.train)
        self.connection.listeners += [p.server_changed for p in panels]  # the server's state and the user's account
        self._on_close = [self.annotate.scene_closed, self.review.scene_closed, self.versions.scene_closed]
        self._released: List[Callable[[], None]] = []
        if parameters is not None:
            self._keep_state(parameters)
        scene.closed_listeners.extend(self._on_close)

    def _keep_state(self, parameters) -> None:
        """The GUI state follows the parameter node (``parameters.ModuleParameters``) both ways: what the user
        chooses is written there, and a reloaded module (or a scene saved with it) starts from what it holds."""
        annotate, review = self.annotate, self.review
        if parameters.get("qc_threshold") is not None:
            review.threshold_spin.value = parameters.get("qc_threshold")
        review.threshold_spin.valueChanged.connect(
            lambda *_: parameters.set("qc_threshold", review.threshold_spin.value)
        )
        annotate.strategy_combo.currentIndexChanged.connect(
            lambda *_: parameters.set("strategy", annotate.strategy_combo.currentText or None)
        )
        annotate.frame_combo.currentIndexChanged.connect(lambda *_: parameters.set("frame", annotate.selected_frame()))
        annotate.shown_listeners.append(lambda study: parameters.set("study", study.image_id))
        self.connection.listeners.append(self._restore)
        self._on_close.append(self._rewrite_choices)  # Close Scene resets the node: the user's choices stay

    def _rewrite_choices(self) -> None:
        self.parameters.set("strategy", self.annotate.strategy_combo.currentText or None)
        self.parameters.set("qc_threshold", self.review.threshold_spin.value)

    def _restore(self, state) -> None:
        """Once connected: the kept strategy, and the kept study opened again (a module reloaded mid-study)."""
        annotate, parameters = self.annotate, self.parameters
        strategy, study = parameters.get("strategy"), parameters.get("study")
        if strategy in state.strategies:
            annotate.strategy_combo.currentIndex = state.strategies.index(strategy)
        if study and annotate.study is None and annotate.job is None:
            annotate.open_study(study)

    def sections(self) -> List[Tuple[str, Any, bool]]:
        """``(title, panel, collapsed)`` in the order the module shows them."""
        return [
            ("Connection", self.connection, False),
            ("Annotate", self.annotate, False),
            ("Review", self.review, True),
            ("Label versions", self.versions, True),
            ("Rank slices", self.rank, True),
            ("Train", self.train, True),
        ]

    def timers(self) -> list:
        """Every timer a panel runs (training and cohort polls)."""
        return [self.train.poll_timer, self.train.cohort.poll_timer]

    def follow_effects(self, factory, editor) -> None:
        """Keep the embedded Segment Editor's effect list complete: effects registered after it was built (e.g.
        SegmentEditorExtraEffects at start-up) are added, as Slicer's own Segment Editor module does."""

        def update(*_: Any) -> None:
            editor.updateEffectList()

        factory.effectRegistered.connect(update)
        self._released.append(lambda: factory.effectRegistered.disconnect(update))

    def cleanup(self) -> None:
        """The module is closed or reloaded: no timer fires, no observer or connection stays, the worker ends."""
        for timer in self.timers():
            timer.stop()
        for release in self._released:
            release()
        self._released = []
        for listener in self._on_close:
            if listener in self.scene.closed_listeners:
                self.scene.closed_listeners.remove(listener)
        self.runner.shutdown()
        self.scene.close()
