"""``cmrassist import-dicom``, ``cmrassist export-seg`` and ``cmrassist report``."""

import os
import sys
from typing import Optional

from tqdm import tqdm

from cmrassist_server.core.errors import CMRAssistError

DEFAULT_MODEL_DIR = os.path.join("server", "model")


def _progress(desc: str, unit: str):
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _studies(folder: str):
    from cmrassist_server.io.dicom.importer import existing_ids
    from cmrassist_server.io.studies import StudiesWriter

    if not existing_ids(folder):
        raise CMRAssistError(f"{folder} is not a studies folder (no datastore_v2.json with studies)")
    return StudiesWriter(folder).datastore


def _phases(model_dir: Optional[str]):
    from cmrassist_server.reporting.phases import model_phases
    from cmrassist_server.segmentation.predictor import served_segmentation

    checkpoint = os.path.join(model_dir, "segmentation.pt") if model_dir else ""
    if not checkpoint or not os.path.isfile(checkpoint):
        return None
    print(f"[import-dicom] ED/ES from the segmentation model {checkpoint}", file=sys.stderr)
    return model_phases(served_segmentation(checkpoint))


def cmd_import_dicom(args) -> int:
    from cmrassist_server.io.dicom.importer import import_dicom

    result = import_dicom(args.src, args.dst, phases=_phases(args.model_dir), progress=_progress("import", "cine"))
    print(
        f"imported {result['cines']} short-axis cines ({len(result['images'])} studies) from {result['files']} files "
        f"in {result['seconds']:.1f} s -> {args.dst}"
    )
    for image_id in result["already_imported"]:
        print(f"  already imported: {image_id}")
    for line in result["skipped"]:
        print(f"  left out: {line}")
    if result["not_dicom"]:
        print(f"  not DICOM: {len(result['not_dicom'])} files (e.g. {result['not_dicom'][0]})")
    return 0


def cmd_export_seg(args) -> int:
    import SimpleITK as sitk

    from cmrassist_server.imaging.imageio import read_image
    from cmrassist_server.io.dicom.importer import load_references
    from cmrassist_server.io.dicom.seg import phase_of, write_seg

    datastore = _studies(args.studies)
    if args.tag not in (datastore.get_labels_by_image_id(args.image) or {}):
        raise CMRAssistError(f"{args.image!r} has no label tagged {args.tag!r}")
    info = datastore.get_image_info(args.image) or {}
    image = read_image(datastore.get_image_uri(args.image))
    label_info = datastore.get_label_info(args.image, args.tag) or {}
    label = read_image(datastore.get_label_uri(args.image, args.tag))
    array = sitk.GetArrayFromImage(label)
    cine_id = args.image if image.GetDimension() == 4 else info.get("source_image")
    phase = phase_of(info)
    if not cine_id or (image.GetDimension() == 3 and phase is None):
        raise CMRAssistError(f"{args.image!r} was not imported from DICOM: no source instances to reference")
    if image.GetDimension() == 4 and array.ndim == 3:
        raise CMRAssistError(
            f"the {args.tag!r} label of {args.image!r} is one 3D frame of a cine: export its frame study"
        )
    phases = list(range(array.shape[0])) if array.ndim == 4 else [phase]
    datasets = write_seg(
        array,
        image,
        load_references(args.studies, cine_id),
        phases=phases,
        tag=args.tag,
        annotator=str(args.annotator or label_info.get("annotator") or "unknown"),
        expertise=str(label_info.get("expertise") or ""),
        automatic=args.tag == "original",
    )
    os.makedirs(args.out, exist_ok=True)
    for ds in datasets:
        path = os.path.join(args.out, f"{args.image}_{args.tag}_{ds.InstanceNumber:03d}.dcm")
        ds.save_as(path, write_like_original=False)
        print(path)
    return 0


def cmd_report(args) -> int:
    from cmrassist_server.qc.check import QualityChecker
    from cmrassist_server.reporting.render import render
    from cmrassist_server.reporting.report import build_report
    from cmrassist_server.reporting.study import study_data
    from cmrassist_server.segmentation.batch import served_batch

    datastore = _studies(args.studies)
    data = study_data(datastore, args.image)
    checkpoint = os.path.join(args.model_dir, "qc.pt")
    # The QC's view of the frame: batch work's segmentation (the fold ensemble while it serves, with flips).
    segmentation = served_batch(os.path.join(args.model_dir, "segmentation.pt"))
    report = build_report(
        data, QualityChecker(checkpoint if os.path.isfile(checkpoint) else None, segmentation=segmentation)
    )
    content, _ = render(data, report, args.format)
    if args.out in ("", "-") and args.format in ("json", "csv"):
        sys.stdout.write(content.decode())
        return 0
    out = args.out or f"{args.image}_report.{args.format}"
    with open(out, "wb") as f:
        f.write(content)
    print(out)
    return 0


def add_commands(sub) -> None:
    """The clinical-data commands (see the module docstring)."""
    p = sub.add_parser("import-dicom", help="DICOM short-axis cines (folder, any layout) -> a studies folder")
    p.add_argument("src", help="folder of DICOM files (any names, nested folders, several studies)")
    p.add_argument("dst", help="MONAI Label studies folder (created when missing)")
    p.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help="ED/ES from its segmentation model when it holds one (else ED = first phase, ES left open)",
    )
    p.add_argument("--no-model", dest="model_dir", action="store_const", const="", help="never use a model")
    p.set_defaults(func=cmd_import_dicom)

    p = sub.add_parser("export-seg", help="a stored label as DICOM SEG referencing its DICOM source")
    p.add_argument("--studies", required=True)
    p.add_argument("--image", required=True, help="image id (a cine for a 4D label, or a frame study)")
    p.add_argument("--tag", default="final")
    p.add_argument("--annotator", default="", help="content creator (the label's annotator by default)")
    p.add_argument("--out", required=True, help="folder for the SEG files (one per labelled phase)")
    p.set_defaults(func=cmd_export_seg)

    p = sub.add_parser("report", help="clinical measures, QC summary and pictures of a segmented study")
    p.add_argument("--studies", required=True)
    p.add_argument("--image", required=True, help="the cine or one of its ED/ES frame studies")
    p.add_argument("--format", default="pdf", choices=["json", "csv", "pdf", "png", "html"])
    p.add_argument("--out", default="", help="file to write (json/csv go to stdout when omitted or '-')")
    p.add_argument("--model-dir", default=DEFAULT_MODEL_DIR, help="where the QC model is (rules only without one)")
    p.set_defaults(func=cmd_report)
