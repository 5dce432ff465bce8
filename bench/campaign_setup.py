"""A campaign's site before it starts: the subjects (ACDC patients of one CV fold, or phantoms), their studies on a
server's studies folder (ED and ES frames, the cine where propagation needs it, the seed's expert labels), and the
seed model trained on the seed alone through the server's own train task (``bench/campaign.py`` runs it)."""

import os
import shutil
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
from campaign_sim import Frame, Site

from cmrassist_server.imaging.imageio import Orientation
from cmrassist_server.io.studies import StudiesWriter, label_info
from cmrassist_server.release.shipped import shipped_folder


@dataclass
class Subject:
    """One subject: its ED and ES frames (expert labels kept aside), and its cine if it has one."""

    name: str
    frames: List[Frame]
    ed_label: sitk.Image
    es_label: sitk.Image
    cine: object = None  # a SimpleITK 4D image, or a path to one


@dataclass
class Cohort:
    """Who plays which part: ``seed`` (labelled at the start), ``cohort`` (the campaign labels them), ``held_out``
    (judge the retrained model; never labelled)."""

    seed: List[Subject]
    cohort: List[Subject]
    held_out: List[Subject]


def _subject(name: str, ed, es, ed_label, es_label, cine, ed_frame: int, es_frame: int) -> Subject:
    def frame(image, label, phase, number):
        image = sitk.ReadImage(image) if isinstance(image, str) else image
        label = sitk.ReadImage(label) if isinstance(label, str) else label
        truth = Orientation.of(image).to_canonical(sitk.GetArrayFromImage(label).astype(np.uint8))
        cine_id = f"{name}_cine" if cine is not None else None
        return Frame(f"{name}_{phase.lower()}", name, phase, image, truth, cine_id, number), label

    (ed_f, ed_l), (es_f, es_l) = frame(ed, ed_label, "ED", ed_frame), frame(es, es_label, "ES", es_frame)
    return Subject(name, [ed_f, es_f], ed_l, es_l, cine)


def phantom_cohort(seed_subjects: int, cohort: int, held_out: int, seed: int = 0) -> Cohort:
    """Phantoms with cines (tests and demonstrations): seed, cohort and held-out subjects in that order."""
    from cmrassist_server.io.phantoms import make_phantom

    subjects = []
    for i in range(seed_subjects + cohort + held_out):
        p = make_phantom(seed + i, with_cine=True, n_frames=8)
        es = p.anatomy.es_frame + 1
        subjects.append(_subject(p.name, p.ed_image, p.es_image, p.ed_label, p.es_label, p.cine, 1, es))
    return Cohort(subjects[:seed_subjects], subjects[seed_subjects:-held_out], subjects[-held_out:])


def acdc_cohort(acdc: str, fold: int, seed_subjects: int, cohort: int, seed: int = 0) -> Cohort:
    """ACDC fold ``fold`` of the 5-fold CV (``release/folds.acdc_folds``): its patients judge; of the other 80,
    ``seed_subjects`` (drawn with ``seed``) start labelled and up to ``cohort`` are the campaign's.
    A patient without its whole cine (all but one) gets a two-frame one, ED then ES, for propagation."""
    from cmrassist_server.io.acdc import find_patients
    from cmrassist_server.release.folds import acdc_folds

    folds = acdc_folds(acdc, 5, seed)
    training = sorted(n for k, f in enumerate(folds) if k != fold for n in f)
    order = [training[i] for i in np.random.default_rng(seed).permutation(len(training))]
    chosen = {"seed": order[:seed_subjects], "cohort": order[seed_subjects : seed_subjects + cohort]}
    chosen["held_out"] = sorted(folds[fold])
    parts = {}
    for part, numbers in chosen.items():
        parts[part] = []
        for p in find_patients(acdc, set(numbers)):
            ed, es = p.ed_frame, p.es_frame
            images = (p.frame_path(ed), p.frame_path(es), p.frame_path(ed, gt=True), p.frame_path(es, gt=True))
            if not os.path.isfile(p.cine_path):  # ED and ES alone: a two-frame cine to propagate through
                cine, ed, es = sitk.JoinSeries([sitk.ReadImage(images[0]), sitk.ReadImage(images[1])]), 1, 2
            else:
                cine = p.cine_path
            parts[part].append(_subject(p.name, *images, cine, ed, es))
    return Cohort(parts["seed"], parts["cohort"], parts["held_out"])


def write_studies(folder: str, cohort: Cohort, cines: bool) -> None:
    """Every subject's frames as studies; the cohort's cines when ``cines``; the seed's expert labels."""
    writer = StudiesWriter(folder)
    for part in (cohort.seed, cohort.cohort, cohort.held_out):
        for s in part:
            if cines and part is cohort.cohort and s.cine is not None:
                ed_frame, es_frame = s.frames[0].cine_frame, s.frames[1].cine_frame
                info = {"patient": s.name, "ed_frame": ed_frame, "es_frame": es_frame}
                writer.add_image(f"{s.name}_cine", s.cine, info)
            for f, label in zip(s.frames, (s.ed_label, s.es_label)):
                info = {"patient": s.name, "phase": f.phase, "frame": f.cine_frame}
                if cines and s.cine is not None and part is cohort.cohort:
                    info["source_image"] = f.cine_id
                writer.add_image(f.image_id, f.image, info)
                if part is cohort.seed:
                    writer.add_label(f.image_id, label, label_info("ACDC expert", "expert", source="seed"))


def seed_site(work: str, cohort: Cohort, epochs: int, cines: bool) -> Dict[str, str]:
    """The studies and model folders every strategy starts from: studies written, the shipped QC and
    slice-position models, and a segmentation model trained from scratch on the seed alone for ``epochs``."""
    studies, models = os.path.join(work, "studies"), os.path.join(work, "models")
    write_studies(studies, cohort, cines)
    os.makedirs(models, exist_ok=True)
    for name in ("qc.pt", "slice_position.pt"):
        shutil.copy(os.path.join(shipped_folder(), name), os.path.join(models, name))
    site = Site(studies, models, os.path.join(work, "seed-server.log"))
    try:
        site.train(epochs, from_scratch=True)
    finally:
        site.stop()
    return {"studies": studies, "models": models}
