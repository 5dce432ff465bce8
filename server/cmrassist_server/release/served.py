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
    same_inputs(source, state, variant)
    odds = calibration_odds(state, variant)
    target = os.path.join(models, SERVED)
    replaced, manifest = read_checksums(models).get(SERVED), read_manifest(models)
    atomic_write(target, lambda tmp: write_shipped(source, tmp, odds))
    digest = file_sha256(target)
    atomic_write_json(record_path(target), {**load(target).record, "checkpoint_sha256": digest})
    # The ensemble is relinked before any checksum changes, so a run stopped part-way and run again relinks it too.
    linked = manifest is not None and manifest["served_sha256"] in (replaced, digest)
    if linked:
        _rename_served(models, manifest, manifest["served_sha256"], digest)
    _copy_history(run, models)
    engine = os.path.basename(export_engine(load_segmentation(target), target))
    digests = {SERVED: digest, engine: file_sha256(os.path.join(models, engine))}
    card = served_card(run, digests, odds, read_calibration(state, variant), state, variant, models)
    atomic_write(os.path.join(models, "segmentation.md"), lambda tmp: Path(tmp).write_text(card))
    for file in list(digests) + ([MANIFEST] if linked else []):
        digests[file] = update_checksum(models, file)
    return digests


def same_inputs(source: str, state: str, variant: str) -> None:
    """The run's model must take the inputs of the CV's fold models (its calibration was chosen on them).

    Raises:
        CMRAssistError (409): it takes other inputs (another variant or preprocessing).
    """
    fold = os.path.join(state, variant, "fold0", "segmentation.pt")
    if not os.path.isfile(fold):
        return  # no cross-validation: no calibration to carry over (odds 1)
    mine, theirs = (dict(load(p).preprocess or {}) for p in (source, fold))
    for config in (mine, theirs):
        config.pop("myocardium_odds", None)
    if mine != theirs:
        raise CMRAssistError(
            f"{source} takes other inputs than the {variant} cross-validation's models in {state}: its calibration "
            "does not apply; name the cross-validation of this recipe",
            409,
        )


def _copy_history(run: str, models: str) -> None:
    """The run's training history beside the shipped model (none: the replaced model's is removed)."""
    history, shipped = os.path.join(run, "segmentation.history.json"), os.path.join(models, "segmentation.history.json")
    if os.path.isfile(history):
        shutil.copyfile(history, shipped)
    elif os.path.isfile(shipped):
        os.remove(shipped)


def _rename_served(models: str, manifest: Dict, named: str, digest: str) -> None:
    """The ensemble ships with the new served model: its manifest and card name it instead of ``named``."""
    atomic_write_json(os.path.join(models, MANIFEST), {**manifest, "served_sha256": digest})
    card = os.path.join(models, CARD)
    if os.path.isfile(card) and named != digest:
        text = Path(card).read_text().replace(named, digest)
        atomic_write(card, lambda tmp: Path(tmp).write_text(text))


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
