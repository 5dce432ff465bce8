"""``cmrassist ship-served``: the model of a finished release run (``cmrassist train-release --all-patients``)
shipped as the served ``segmentation.pt`` (one-click) beside the fold ensemble (batch work).

It ships with the cross-validation's myocardium calibration written in (``release/calibration.py``), so one-click
labels a frame with the odds batch work uses; with its record, its CPU engine, its card (the run's, with the
calibration and where the recipe's cross-validated figures are) and its lines in ``SHA256SUMS``. A shipped
ensemble that named the replaced model names the new one: they ship together.
"""

import os
import shutil
from pathlib import Path
from typing import Dict

from cmrassist_server.core.checkpoints import atomic_write, atomic_write_json, file_sha256, load, record_path
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.release.calibration import (
    calibration_odds,
    calibration_section,
    read_calibration,
    write_shipped,
)
from cmrassist_server.release.cards import update_checksum
from cmrassist_server.release.ensemble import CARD, MAX_BYTES
from cmrassist_server.release.shipped import read_checksums
from cmrassist_server.segmentation.batch import MANIFEST, read_manifest
from cmrassist_server.segmentation.engine import export_engine
from cmrassist_server.segmentation.network import load_segmentation

SERVED = "segmentation.pt"


def run_model(run: str) -> str:
    """The finished release run's ``segmentation.pt`` (with its card and checksum beside it), checked.

    Raises:
        CMRAssistError: no finished run in ``run``, a file that is not a segmentation checkpoint, over 25 MB, or
            that does not match the run's ``SHA256SUMS``.
    """
    source, card = os.path.join(run, SERVED), os.path.join(run, "segmentation.md")
    if not (os.path.isfile(source) and os.path.isfile(card)):
        raise CMRAssistError(
            f"{run} holds no finished release run (segmentation.pt and its card): run cmrassist train-release "
            f"--models segmentation --all-patients --out {run} first, or continue it with --resume"
        )
    load(source, kind="segmentation")  # a damaged or foreign file is refused here, never shipped
    if os.path.getsize(source) >= MAX_BYTES:
        raise CMRAssistError(f"{source} is {os.path.getsize(source) / 1e6:.1f} MB: shipped models stay under 25 MB")
    if read_checksums(run).get(SERVED) != file_sha256(source):
        raise CMRAssistError(f"{source} does not match the run's SHA256SUMS: it changed after the run made it")
    return source


def ship_served(run: str, state: str, variant: str, models: str) -> Dict[str, str]:
    """Ship ``run``'s model as ``models/segmentation.pt``, calibrated by the CV in ``state``; returns the SHA-256
    of what it wrote by file (``segmentation.pt``, the engine, and the manifest where an ensemble names it).

    Args:
        run: the release run's ``--out`` folder.
        state: the segmentation cross-validation's ``--state`` folder (its calibration, 1 without one).
        variant: the recipe variant that CV ran.
        models: the shipped models' folder.

    Raises:
        CMRAssistError: see :func:`run_model`; a calibration chosen on other fold models (409).
    """
    source = run_model(run)
    odds = calibration_odds(state, variant)
    target = os.path.join(models, SERVED)
    replaced = read_checksums(models).get(SERVED)
    atomic_write(target, lambda tmp: write_shipped(source, tmp, odds))
    atomic_write_json(record_path(target), {**load(target).record, "checkpoint_sha256": file_sha256(target)})
    history = os.path.join(run, "segmentation.history.json")
    if os.path.isfile(history):
        shutil.copyfile(history, os.path.join(models, os.path.basename(history)))
    digests = {SERVED: update_checksum(models, SERVED)}
    engine = os.path.basename(export_engine(load_segmentation(target), target))
    digests[engine] = update_checksum(models, engine)
    card = served_card(run, digests, odds, read_calibration(state, variant), state, variant, models)
    atomic_write(os.path.join(models, "segmentation.md"), lambda tmp: Path(tmp).write_text(card))
    manifest = read_manifest(models)
    if manifest and manifest["served_sha256"] == replaced:
        digests[MANIFEST] = _rename_served(models, manifest, replaced, digests[SERVED])
    return digests


def _rename_served(models: str, manifest: Dict, replaced: str, digest: str) -> str:
    """The ensemble ships with the new served model: its manifest and card name it; returns the manifest's digest."""
    atomic_write_json(os.path.join(models, MANIFEST), {**manifest, "served_sha256": digest})
    card = os.path.join(models, CARD)
    if os.path.isfile(card):
        text = Path(card).read_text().replace(replaced, digest)
        atomic_write(card, lambda tmp: Path(tmp).write_text(text))
    return update_checksum(models, MANIFEST)


def served_card(run: str, digests: Dict[str, str], odds: float, calibration, state: str, variant: str, models: str):
    """The run's card with the shipped files' digests, the command that shipped it, and the calibration."""
    text = Path(os.path.join(run, "segmentation.md")).read_text()
    made = read_checksums(run)
    for file, digest in digests.items():
        if made.get(file):
            text = text.replace(made[file], digest)  # the run's digests: these bytes were recalibrated
    text = text.replace("--out models ", f"--out {run} ")  # the card names the run's folder as `models`
    ship = f"cmrassist ship-served --run {run} --state {state} --variant {variant} --models {models}"
    shipped = (
        f"\n## As shipped\n\nShipped by `{ship}`, with the myocardium odds {odds:g} of the cross-validation in "
        f"`{os.path.join(state, variant)}` written in: one-click labels a frame as batch work does. The recipe's "
        f"cross-validated figures (each patient scored by a fold model that never saw it) are in `{CARD}`.\n"
    )
    section = (shipped + calibration_section(calibration, "This model carries")).strip("\n")
    at = text.find("## Licence")
    at = at if at >= 0 else len(text)
    return text[:at].rstrip("\n") + "\n\n" + section + "\n\n" + text[at:]
