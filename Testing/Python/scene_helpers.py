"""Studies and labels as the worker process hands them to the viewer, and a driver for the viewer's steps."""

import os

from CMRAssistLib.annotation import LabelFile, Study
from CMRAssistLib.frames import count_frames, split_frames


def study_of(path: str, image_id: str, folder: str, **info) -> Study:
    """The study as the worker process hands it to the viewer: the file and its uncompressed frame copies."""
    frames = split_frames(path, os.path.join(folder, image_id))
    return Study(image_id, path, dict(info), n_frames=count_frames(path), frame_files=frames)


def label_of(path: str, folder: str) -> LabelFile:
    return LabelFile(path, split_frames(path, folder), "")


def run(steps):
    """Drive scene steps to the end, as the background runner does between GUI events; their result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
