"""A subject's record: its measures, volume-time curve, checks, QC summaries, review priority and table row."""

from typing import Dict, List, Optional, Tuple

import numpy as np

from cmrassist_server.cohort.checks import curve_checks, failed_checks, function_checks
from cmrassist_server.cohort.frames import SubjectFrames
from cmrassist_server.cohort.function import (
    finite,
    frame_interval_s,
    frame_volumes,
    subject_function,
    volume_curve,
)
from cmrassist_server.cohort.studies import Subject
from cmrassist_server.cohort.table import subject_row


def _ed_es(chosen: SubjectFrames, volumes: List[Dict[str, float]]) -> Tuple[Optional[int], Optional[int], str]:
    """ED and ES (indices into the frames) and where they come from: the image info, else the LV volumes."""
    if chosen.ed_index is not None and chosen.es_index is not None:
        return chosen.ed_index, chosen.es_index, "image info"
    if len(volumes) < 2:
        return (0 if volumes else None), None, "one frame only"
    lv = [v["lv_ml"] for v in volumes]
    return int(np.argmax(lv)), int(np.argmin(lv)), "volume curve" if chosen.whole_cine else "volumes"


def _compact(report: Dict) -> Dict:
    """What the record keeps of a frame's QC report (the ED and ES reports are kept whole)."""
    return {k: report[k] for k in ("learned", "summary", "dice_3d", "volumes")}


def review_target(subject: Subject, chosen: SubjectFrames, reports: List[Dict], ed, es) -> Tuple[str, int]:
    """The study the review queue points at and the frame whose report goes with it: the worse of the subject's
    ED and ES (as its own study when the studies folder has one, else the cine), else its worst frame."""
    candidates = [i for i in (ed, es) if i is not None] or list(range(len(reports)))
    worst = max(candidates, key=lambda i: (reports[i]["summary"]["review_priority"], -i))
    frame = chosen.frames[worst]
    if frame.in_cine:
        for image in subject.images:
            if image.image_id != frame.image.image_id and _frame_of(image.info) == frame.number:
                return image.image_id, worst
    return frame.image.image_id, worst


def _frame_of(info: Dict) -> Optional[int]:
    try:
        return int(info.get("frame"))
    except (TypeError, ValueError):
        return None


def subject_record(subject: Subject, chosen: SubjectFrames, labels, reports, paths, settings) -> Dict:
    """The record of an analysed subject (see ``docs/scaling.md`` for its fields)."""
    frames = chosen.frames
    spacings = [tuple(reversed(f.reference.GetSpacing())) for f in frames]
    volumes = [frame_volumes(label, sp) for label, sp in zip(labels, spacings)]
    ed, es, source = _ed_es(chosen, volumes)
    function = {}
    if ed is not None and es is not None:
        function = subject_function(labels[ed], labels[es], spacings[ed], spacings[es], reports[ed], reports[es])
    curve = (
        volume_curve([f.number for f in frames], volumes, frame_interval_s(chosen.info)) if chosen.whole_cine else None
    )
    checks = curve_checks(curve["lv_ml"], ed, es, source == "image info", settings.checks) if curve else []
    checks += function_checks(function, settings.checks) if function else []
    image_id, worst = review_target(subject, chosen, reports, ed, es)
    frame_priorities = [r["summary"]["review_priority"] for r in reports]
    review = {
        "priority": round(max(frame_priorities) + len(failed_checks(checks)), 4),
        "image": image_id,
        "frame": frames[worst].number,
        "failed_checks": failed_checks(checks),
    }
    record = {
        "subject": subject.subject_id,
        "status": "done",
        "images": [image.image_id for image in subject.images],
        "unused_images": chosen.unused_images,
        "frames_total": chosen.total_frames,
        "ed_frame": frames[ed].number if ed is not None else None,
        "es_frame": frames[es].number if es is not None else None,
        "ed_es_source": source,
        "function": function,
        "curve": curve,
        "checks": checks,
        "review": review,
        "frames": [
            {
                "frame": f.number,
                "image": f.image.image_id,
                "label": path,
                **{k: finite(v) for k, v in vol.items()},
                "qc": _compact(report),
            }
            for f, path, vol, report in zip(frames, paths, volumes, reports)
        ],
        "qc": {
            "ed": reports[ed] if ed is not None else None,
            "es": reports[es] if es is not None else None,
            "review": reports[worst],
        },
        "settings": settings.stamp(),
    }
    record["row"] = subject_row(record)
    return record
