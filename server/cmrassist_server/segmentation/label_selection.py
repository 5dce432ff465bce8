"""Which labels a segmentation training run learns from: reviewed finals, expert or non-expert versions, consensus,
and labels propagated across cine frames, each with its sampling weight."""

import os
from typing import Dict, List, Tuple

from monailabel.interfaces.datastore import Datastore

from cmrassist_server.annotations.versions import CONSENSUS
from cmrassist_server.io.studies import training_items
from cmrassist_server.segmentation.training import SegmentationTrainOptions

PROPAGATED = "propagated"


def _kind(expertise: str) -> str:
    return "expert" if expertise == "expert" else "consensus" if expertise == "consensus" else "non_expert"


def selected_items(datastore: Datastore, options: SegmentationTrainOptions) -> Tuple[List[Dict], List[Dict]]:
    """``(training items, validation items)`` for ``options.labels``; validation always uses ``final`` labels.

    Raises:
        ValueError: nothing matches the choice, or versions are asked for on a datastore without them.
    """
    finals = training_items(datastore)
    if options.labels == "final":
        items = [dict(it) for it in finals]
    else:
        versions = getattr(datastore, "versions", None)
        if versions is None:
            raise ValueError(f"labels={options.labels} needs label versions, which only a local studies folder keeps")
        items = []
        for image_id in datastore.list_images():
            info = datastore.get_image_info(image_id) or {}
            for v in versions.list(image_id)["versions"] or _final_as_version(datastore, image_id):
                kind = "consensus" if v["id"] == CONSENSUS else _kind(v["expertise"])
                wanted = kind == options.labels or (options.labels == "all" and kind != "consensus")
                if not wanted:
                    continue
                weight = options.expert_weight if kind in ("expert", "consensus") else options.non_expert_weight
                if weight <= 0:
                    continue
                items.append(
                    {
                        "image": datastore.get_image_uri(image_id),
                        "label": v.get("path") or versions.path(image_id, v["id"]),
                        "subject": info.get("patient", image_id),
                        "group": info.get("group", ""),
                        "weight": weight,
                        "version": v["id"],
                    }
                )
    if options.propagated and options.propagated_weight > 0:
        items += propagated_items(datastore, options.propagated_weight)
    if not items:
        raise ValueError(f"no labels match labels={options.labels}: submit some, or choose other labels")
    return items, finals


def _final_as_version(datastore: Datastore, image_id: str) -> List[Dict]:
    """A ``final`` label stored without versions (e.g. imported) counts as its annotator's version."""
    path = datastore.get_label_uri(image_id, "final")
    if not path or not os.path.isfile(path):
        return []
    info = datastore.get_label_info(image_id, "final") or {}
    return [
        {"id": str(info.get("annotator") or "original"), "expertise": info.get("expertise") or "unknown", "path": path}
    ]


def propagated_items(datastore: Datastore, weight: float) -> List[Dict]:
    """Images whose label tagged ``propagated`` exists (cines labelled on one frame and propagated)."""
    items = []
    for image_id in datastore.list_images():
        path = datastore.get_label_uri(image_id, PROPAGATED)
        if path and os.path.isfile(path):
            info = datastore.get_image_info(image_id) or {}
            items.append(
                {
                    "image": datastore.get_image_uri(image_id),
                    "label": path,
                    "weight": weight,
                    "subject": info.get("patient", image_id),
                    "group": info.get("group", ""),
                    "version": PROPAGATED,
                }
            )
    return items
