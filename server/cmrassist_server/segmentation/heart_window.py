"""The heart-sized window (issue 23): the network runs on a window around the heart instead of the whole field of
view (a 192-pixel window at 1.5 mm is 288 mm across; a heart is about 120 mm), found by one cheap pass on the
stack's middle slice. When that pass is unsure (too little heart found, or a heart too large for the window) the
frame is segmented in the full window, as before."""

from typing import Optional

import torch

from cmrassist_server.imaging.preprocess import CropBox, HeartWindow

#: Edge of the heart window in pixels at 1.5 mm (216 mm): the training patches' size, so the network sees windows
#: like those it learnt from.
HEART_WINDOW = 144
#: Pixels kept free on each side of the heart the probe found: basal and apical slices reach beyond its outline.
MARGIN = 16
#: Fewest heart pixels (LV, myocardium and RV together; 1.5 mm pixels, about 2 cm^2) the probe must find.
MIN_HEART_PIXELS = 100


def probe_slice(slices: int) -> int:
    """The slice the localisation pass runs on: the middle of the stack, where the ventricles are widest."""
    return slices // 2


def locate_heart(
    probabilities: torch.Tensor, box: CropBox, *, size: int = HEART_WINDOW, margin: int = MARGIN
) -> Optional[HeartWindow]:
    """The window around the heart that the probe's class probabilities show, or ``None`` (use the full window).

    Args:
        probabilities: ``(slices, classes, H, W)`` of the probe, in its full window.
        box: where that window sits on the resampled stack.
        size: the heart window's edge in pixels.
        margin: pixels kept free around the heart found.
    """
    if min(box.size) <= size:
        return None  # the full window is no larger: nothing to save
    heart = probabilities.max(1).indices.gt(0).any(0)
    if int(heart.sum()) < MIN_HEART_PIXELS:
        return None
    rows = torch.nonzero(heart.any(1)).flatten()
    cols = torch.nonzero(heart.any(0)).flatten()
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    if max(bottom - top, right - left) + 1 + 2 * margin > size:
        return None
    centre = ((top + bottom + 1) / 2 + box.top, (left + right + 1) / 2 + box.left)
    return HeartWindow(centre=centre, size=size)
