"""Segmentation training data: labelled frames preprocessed once, and heart-centred patches drawn from them."""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from cmrassist_server.imaging.imageio import Orientation, frames_of, read_image
from cmrassist_server.imaging.preprocess import CardiacPreprocessor, crop_or_pad


@dataclass
class PreparedCase:
    """One labelled frame, preprocessed once: ``(slices, H, W)`` image and label at the network spacing.

    ``inputs`` is what the network sees, ``(slices, C, H, W)``: the image and, with a prior, its channel.
    """

    key: str
    subject: str
    image: np.ndarray
    label: np.ndarray
    heart_center: Tuple[float, float]
    weight: float = 1.0  # sampling weight (by the label's expertise or source)
    inputs: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.inputs is None:
            self.inputs = self.image[:, None]


def prepare_cases(
    key: str,
    subject: str,
    image_path: str,
    label_path: str,
    pre: CardiacPreprocessor,
    *,
    weight: float = 1.0,
    prior=None,
) -> List[PreparedCase]:
    """The labelled frames of one datastore item, preprocessed: a 3D frame, or each labelled frame of a cine.

    Args:
        key: the item's name (a cine's frames get ``#frameN``).
        subject: the patient (splits keep a patient's frames together).
        image_path: the study image.
        label_path: its label (a 3D label on a 4D cine gives nothing: it does not say which frame it is).
        pre: the preprocessing.
        weight: sampling weight.
        prior: adds its channel to the inputs (see ``CardiacPreprocessor.input_channels``).
    """
    image = read_image(image_path)
    orientation = Orientation.of(image)
    frames = frames_of(image)
    labels = sitk.GetArrayFromImage(read_image(label_path))
    if image.GetDimension() == 3:
        pairs = [(key, frames[0], labels)]
    elif labels.ndim == 4:
        pairs = [(f"{key}#frame{t + 1}", frames[t], labels[t]) for t in range(len(frames)) if labels[t].any()]
    else:
        pairs = []
    cases = []
    for case_key, frame, label_zyx in pairs:
        stack, _ = pre.resampled_stack(frame, orientation)
        label = pre.resampled_label(label_zyx, orientation)
        fg = np.argwhere(label > 0)
        center = tuple(fg[:, 1:].mean(0)) if len(fg) else (label.shape[1] / 2, label.shape[2] / 2)
        cases.append(
            PreparedCase(
                key=case_key,
                subject=subject,
                image=stack,
                label=label,
                heart_center=center,  # type: ignore[arg-type]
                weight=weight,
                inputs=pre.input_channels(stack, prior),
            )
        )
    return cases


class PatchSampler:
    """Random training patches centred near the heart (jittered), sometimes anywhere in the image.

    Args:
        cases: the prepared frames.
        patch: patch edge in pixels.
        rng: random generator.
        p_anywhere: share of patches centred anywhere (teaches the network what is not heart).
    """

    def __init__(self, cases: List[PreparedCase], patch: int, rng: np.random.Generator, p_anywhere: float = 0.25):
        self.cases = cases
        self.index = [(c, z) for c, case in enumerate(cases) for z in range(case.image.shape[0])]
        weights = np.array([cases[c].weight for c, _ in self.index], dtype=np.float64)
        # Slices drawn in proportion to their label's weight (uniform when all weights are equal).
        self.p = weights / weights.sum() if len(weights) and weights.sum() > 0 and np.ptp(weights) > 0 else None
        self.patch = patch
        self.rng = rng
        self.p_anywhere = p_anywhere

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(inputs (size, C, patch, patch), labels (size, patch, patch))``."""
        picks = (
            self.rng.choice(len(self.index), size, p=self.p)
            if self.p is not None
            else self.rng.integers(0, len(self.index), size)
        )
        images, labels = [], []
        for i in picks:
            c, z = self.index[i]
            case = self.cases[c]
            h, w = case.image.shape[1:]
            if self.rng.random() < self.p_anywhere:
                center = (self.rng.uniform(0, h), self.rng.uniform(0, w))
            else:
                j = self.patch / 4
                center = (
                    case.heart_center[0] + self.rng.uniform(-j, j),
                    case.heart_center[1] + self.rng.uniform(-j, j),
                )
            images.append(crop_or_pad(case.inputs[z], center, (self.patch, self.patch))[0])
            labels.append(crop_or_pad(case.label[z], center, (self.patch, self.patch))[0])
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels).astype(np.int64))
