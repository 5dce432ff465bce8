"""Slice-position ranking calls of the annotation session: batches to order, submissions, cut points.

A mixin of :class:`CMRAssistLib.annotation.AnnotationSession` (it uses ``self.client`` and ``self.settings``); like
the rest of the session it runs in the worker process, so thumbnails travel to the panel as base64 text.
"""

import base64
from typing import Any, Dict, List, Optional, Tuple

AROUND_CUT = 4  # slices shown on each side of a cut point


def items_around_cuts(
    ordered: List[Dict[str, Any]], basal_end: float, apical_start: float, around: int = AROUND_CUT
) -> List[Dict[str, Any]]:
    """The ordered items nearest each cut point (``around`` on each side), in order, each once."""
    ratings = [it["rating"] for it in ordered]
    picked: List[int] = []
    for cut in (basal_end, apical_start):
        split = sum(1 for r in ratings if r > cut)  # ordered from high (basal) to low (apical) rating
        picked += [i for i in range(max(0, split - around), min(len(ordered), split + around)) if i not in picked]
    return [ordered[i] for i in sorted(picked)]


class RankingCalls:
    """The ranking requests a Rank panel makes, each one worker job."""

    def ranking_next(self, progress=None) -> Dict[str, Any]:
        """The next 8 slices for this annotator (base64 PNG thumbnails) and everyone's progress."""
        s = self.settings
        batch = self.client.ranking_batch(s.annotator, s.expertise)
        batch["progress"] = self.client.ranking_progress()
        return batch

    def ranking_submit_next(
        self, batch: str, order: List[int], seconds: Optional[float] = None, progress=None
    ) -> Dict[str, Any]:
        """Store an order (most basal first) and get the next batch at once."""
        self.client.ranking_submit(batch, self.settings.annotator, order, seconds=seconds)
        if progress:
            progress(0.5, "submitted; getting the next 8 slices")
        return self.ranking_next()

    def ranking_cut_items(self, basal_end: float, apical_start: float) -> List[Tuple[Dict[str, Any], str]]:
        """The ranked slices around both cut points with their thumbnails (base64 PNG)."""
        near = items_around_cuts(self.client.ranking_ordered()["items"], basal_end, apical_start)
        return [(it, base64.b64encode(self.client.ranking_thumbnail(it["id"])).decode()) for it in near]

    def ranking_save_cuts(self, basal_end: float, apical_start: float) -> Dict[str, Any]:
        return self.client.ranking_set_cut_points(basal_end, apical_start)
