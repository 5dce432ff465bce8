"""``cmrassist train-release``: the shipped models, or the cross-validation of the segmentation recipe;
``cmrassist calibrate-release``: the myocardium's calibration chosen on a cross-validation's held-out folds;
``cmrassist ship-served``: a release run's model shipped as the served one, with that calibration;
``cmrassist ship-ensemble``: a finished cross-validation's fold models shipped as the ensemble for batch work;
``cmrassist train-qc-release``: the QC trained on that cross-validation's out-of-fold predictions."""

import json
import sys
import time

from tqdm import tqdm


def cmd_train_release(args) -> int:
    """The shipped models from ACDC (see ``release/recipe.py``), or with ``--folds`` the cross-validation of the
    segmentation recipe (``release/folds.py``), with a progress bar per training run."""
    from cmrassist_server.release.folds import FoldsPlan, run_folds
    from cmrassist_server.release.recipe import release_plan, train_release

    _set_threads(args)
    log = _release_log(args)
    if args.folds:
        if not args.state:
            raise ValueError("--folds needs --state DIR: the folder (outside the repository) that keeps the run")
        epochs = int(args.epochs) if args.epochs else FoldsPlan.epochs
        plan = FoldsPlan(
            args.acdc,
            args.state,
            variant=args.variant,
            folds=args.folds,
            epochs=epochs,
            seed=args.seed,
            device=args.device,
            only=args.fold,
            quick=args.quick,
        )
        run_folds(plan, resume=args.resume, log=log)
        return 0
    plan = release_plan(
        args.acdc,
        args.out,
        models=args.models.split(","),
        epochs=args.epochs,
        minutes=args.minutes,
        device=args.device,
        seed=args.seed,
        all_patients=args.all_patients,
        quick=args.quick,
        state=args.state or None,
        resume=args.resume,
    )
    train_release(plan, log=log)
    return 0


def cmd_ship_ensemble(args) -> int:
    """The fold models of a finished 5-fold run into ``--models`` as the shipped ensemble (``release/ensemble.py``)."""
    from cmrassist_server.release.ensemble import ship_ensemble

    manifest = ship_ensemble(args.state, args.variant, args.models)
    print(
        f"shipped the {len(manifest['members'])}-model {args.variant} fold ensemble into {args.models} (with "
        f"segmentation.pt {manifest['served_sha256'][:12]}): ensemble.json, ensemble/, SHA256SUMS"
    )
    return 0


def cmd_ship_served(args) -> int:
    """A finished release run's model shipped as the served ``segmentation.pt``, calibrated (``release/served.py``)."""
    from cmrassist_server.release.served import ship_served

    digests = ship_served(args.run, args.state, args.variant, args.models)
    print(
        f"shipped {args.run}/segmentation.pt into {args.models}: "
        + ", ".join(f"{f} {d[:12]}" for f, d in digests.items())
    )
    return 0


def cmd_calibrate_release(args) -> int:
    """The myocardium's calibration of a cross-validation run, chosen on its folds (``release/calibration.py``)."""
    from cmrassist_server.release.calibration import CALIBRATION, calibrate, calibration_tables

    _set_threads(args)
    calibration = calibrate(args.acdc, args.state, args.variant, device=args.device)
    print("\n".join(calibration_tables(calibration)))
    print(f"kept in {args.state}/{args.variant}/{CALIBRATION}; cmrassist ship-ensemble writes it into the members")
    return 0


def cmd_export_engine(args) -> int:
    """The shipped segmentation model's CPU engine (``segmentation.onnx``) exported beside it, with its checksum."""
    import os

    from cmrassist_server.release.cards import update_checksum
    from cmrassist_server.release.shipped import verified
    from cmrassist_server.segmentation.engine import export_engine
    from cmrassist_server.segmentation.network import load_segmentation

    checkpoint = verified(args.models, "segmentation")  # only the weights SHA256SUMS names are exported
    engine = export_engine(load_segmentation(checkpoint), checkpoint)
    digest = update_checksum(args.models, os.path.basename(engine))
    print(f"exported {checkpoint} to {engine} (SHA-256 {digest[:12]}, in SHA256SUMS)")
    return 0


def cmd_train_qc_release(args) -> int:
    """The QC trained on out-of-fold predictions of a finished segmentation CV (``release/qc_folds.py``): each
    ``--fold`` trained and scored on its held-out patients, or with ``--all`` the QC that ships."""
    from cmrassist_server.release.qc_folds import QCFoldsPlan, run_qc_fold

    _set_threads(args)
    plan = QCFoldsPlan(
        args.acdc,
        args.state,
        variants=tuple(args.variants.split(",")),
        epochs=args.epochs,
        corruptions_per_case=args.corruptions,
        snapshots=args.snapshots,
        snapshot_minutes=args.snapshot_minutes,
        seed=args.seed,
        device=args.device,
        quick=args.quick,
    )
    folds = [None] if args.all else (args.fold or list(range(plan.folds)))
    for fold in folds:
        scores = run_qc_fold(plan, fold, resume=args.resume, log=_release_log(args))
        print(f"[qc] {plan.folder(fold)}: " + (json.dumps(scores.get("protocol")) if fold is not None else "trained"))
    return 0


def _set_threads(args) -> None:
    """``--threads``: 1 thread per run gives the most epochs per CPU-hour on a shared 2-core CPU."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _add_threads(p) -> None:
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own choice)")


def _release_log(args):
    """Progress bars on stderr, and every event as a JSON line in ``--log`` when given."""
    bar = None

    def log(event: str, **fields) -> None:
        nonlocal bar
        if event == "start":
            bar = tqdm(total=100, desc=f"{fields['model']} training", unit="%", file=sys.stderr)
        elif event == "epoch" and bar is not None:
            bar.n = min(100, int(fields["percent"]))
            bar.set_postfix({fields["metric"]: round(fields["score"], 4), "best": round(fields["best_score"], 4)})
            bar.refresh()
        elif event == "done" and bar is not None:
            bar.close()
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps({"event": event, "time": time.time(), **fields}, default=str) + "\n")

    return log


def add_commands(sub) -> None:
    """``train-release``, ``calibrate-release``, ``ship-served``, ``ship-ensemble``, ``export-engine`` and ``train-qc-release`` (see
    the module docstring)."""
    p = sub.add_parser("train-release", help="make the shipped models from ACDC (cards and checksums included)")
    p.add_argument("--acdc", required=True, help="ACDC training folder (read in place)")
    p.add_argument("--out", default="models")
    p.add_argument("--models", default="segmentation,slice_position,qc", help="which, in order")
    p.add_argument("--epochs", default="", help="per model, e.g. segmentation=400,qc=30 (the recipe's by default)")
    p.add_argument("--minutes", default="", help="wall-clock cap: a number for every model, or model=minutes pairs")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all-patients", action="store_true", help="train on all 100 (no held-out figures)")
    p.add_argument("--quick", action="store_true", help="smoke run of the whole recipe on a few patients (tests)")
    p.add_argument("--log", default="", help="append every progress event as a JSON line to this file")
    p.add_argument("--state", default="", help="keep each run's state here (outside the repo) after every epoch")
    p.add_argument("--resume", action="store_true", help="continue the stopped run whose state is in --state")
    p.add_argument("--folds", type=int, default=0, help="cross-validate the segmentation recipe with this many folds")
    p.add_argument("--variant", default="2.5d", help="the recipe variant a --folds run judges (release/folds.py)")
    p.add_argument("--fold", type=int, action="append", help="with --folds: only this fold (repeatable)")
    _add_threads(p)
    p.set_defaults(func=cmd_train_release)
    _add_ship_commands(sub)
    _add_qc_command(sub)


def _add_ship_commands(sub) -> None:
    p = sub.add_parser("ship-ensemble", help="ship a finished 5-fold run's fold models as the batch-work ensemble")
    p.add_argument("--state", required=True, help="the cross-validation run's --state folder")
    p.add_argument("--variant", default="2.5d", help="the recipe variant the run cross-validated")
    p.add_argument("--models", default="models", help="the shipped models' folder (with its segmentation.pt)")
    p.set_defaults(func=cmd_ship_ensemble)

    p = sub.add_parser("ship-served", help="ship a release run's model as the served one, with the CV's calibration")
    p.add_argument("--run", required=True, help="the release run's --out folder (train-release --all-patients)")
    p.add_argument("--state", required=True, help="the segmentation cross-validation's --state folder")
    p.add_argument("--variant", default="2.5d", help="the recipe variant the cross-validation ran")
    p.add_argument("--models", default="models", help="the shipped models' folder")
    p.set_defaults(func=cmd_ship_served)

    p = sub.add_parser("calibrate-release", help="choose the myocardium's calibration on a CV run's held-out folds")
    p.add_argument("--acdc", required=True, help="ACDC training folder (read in place)")
    p.add_argument("--state", required=True, help="the cross-validation run's --state folder")
    p.add_argument("--variant", default="2.5d", help="the recipe variant the run cross-validated")
    p.add_argument("--device", default=None)
    _add_threads(p)
    p.set_defaults(func=cmd_calibrate_release)

    p = sub.add_parser("export-engine", help="export the shipped segmentation model for the CPU engine (ONNX)")
    p.add_argument("--models", default="models", help="the shipped models' folder (with its segmentation.pt)")
    p.set_defaults(func=cmd_export_engine)


def _add_qc_command(sub) -> None:
    p = sub.add_parser("train-qc-release", help="train the QC on a finished CV's out-of-fold predictions")
    p.add_argument("--acdc", required=True, help="ACDC training folder (read in place)")
    p.add_argument("--state", required=True, help="the segmentation CV's --state folder (the QC run goes beside)")
    p.add_argument("--variants", default="2.5d", help="comma-separated CV variants forming each patient's view")
    p.add_argument("--fold", type=int, action="append", help="only this QC fold (repeatable; default all)")
    p.add_argument("--all", action="store_true", help="the QC that ships: trained on every patient, not scored")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--corruptions", type=int, default=8, help="corrupted copies of each expert label")
    p.add_argument("--snapshots", type=int, default=3, help="weak segmentation models adding real model errors")
    p.add_argument("--snapshot-minutes", type=float, default=1.5, help="training budget of each snapshot")
    p.add_argument("--seed", type=int, default=0, help="the seed the segmentation CV was split with")
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="every 5th patient (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue a stopped QC fold from its state")
    _add_threads(p)
    p.add_argument("--log", default="", help="append every progress event as a JSON line to this file")
    p.set_defaults(func=cmd_train_qc_release)
