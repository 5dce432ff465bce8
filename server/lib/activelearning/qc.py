"""Strategy ``qc``: the study most in need of review first, by its stored QC report."""

import logging

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from cmrassist_server.qc.store import QCStore

logger = logging.getLogger(__name__)


class ReviewFirst(Strategy):
    """Highest ``review_priority`` first (worst rebuilt 3D Dice and most flagged slices; see ``docs/qc.md``).

    Studies not yet scored come after every scored one, first those without a final label; ties go to the
    smaller id, so the order is stable.

    Args:
        store: the per-image QC results written by the ``qc`` scoring method and infer task.
    """

    def __init__(self, store: QCStore):
        super().__init__("Study most in need of review first (QC: worst predicted quality, most flagged slices)")
        self.store = store

    def __call__(self, request, datastore: Datastore):
        images = set(datastore.list_images())
        if not images:
            return None
        scored = {i: r["summary"]["review_priority"] for i, r in self.store.items() if i in images and "summary" in r}
        if scored:
            best = min(scored, key=lambda i: (-scored[i], i))
            return {"id": best, "review_priority": scored[best]}
        unlabelled = sorted(datastore.get_unlabeled_images())
        return {"id": (unlabelled or sorted(images))[0], "review_priority": None}
