"""Short-axis cine stacks from DICOM frame records: which series form a stack (one series per slice location, one
series with every slice and phase, or one enhanced multi-frame instance), the grid of frames by cardiac phase and
slice position along the stack normal, and the checks that refuse what would make a wrong volume."""

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.dicom.frames import FrameRecord

#: Series whose normals lie within this angle may be one stack (long-axis views lie 30-90 degrees apart).
GROUP_ANGLE_DEG = 10.0
#: Slices of one stack must share their orientation to within this angle.
ORIENTATION_TOL_DEG = 0.5
POSITION_TOL_MM = 0.05
SPACING_TOL = 0.01
LONG_AXIS = re.compile(r"(2|3|4)\s*-?\s*ch|lax|long|lvot|vla|hla", re.IGNORECASE)


@dataclass(frozen=True)
class SkippedSeries:
    """A series that is not a short-axis cine, and why."""

    series: str
    series_number: int
    description: str
    reason: str

    def line(self) -> str:
        return f"series {self.series_number} {self.description!r}: {self.reason}"


@dataclass
class CineStack:
    """A short-axis cine: ``grid[phase][slice]``, slices ascending along the stack normal (row x column direction),
    phases in trigger-time order (temporal position, else instance number, where trigger times are missing)."""

    grid: List[List[FrameRecord]]
    slice_spacing: float

    @property
    def first(self) -> FrameRecord:
        return self.grid[0][0]

    @property
    def series(self) -> Tuple[str, ...]:
        return tuple(sorted({r.series for phase in self.grid for r in phase}))

    @property
    def n_phases(self) -> int:
        return len(self.grid)

    @property
    def n_slices(self) -> int:
        return len(self.grid[0])

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction matrix, columns = row direction, column direction, stack normal (LPS)."""
        f = self.first
        return np.stack([np.asarray(f.orientation[:3]), np.asarray(f.orientation[3:]), f.normal], axis=1)

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """(column spacing, row spacing, slice spacing) in mm, i.e. along x, y, z of the image."""
        row_mm, col_mm = self.first.pixel_spacing
        return (float(col_mm), float(row_mm), float(self.slice_spacing))

    def trigger_times(self) -> List[Optional[float]]:
        """Each phase's trigger time (ms), averaged over slices (each slice may come from its own breath-hold)."""
        out = []
        for phase in self.grid:
            times = [r.trigger_time for r in phase if r.trigger_time is not None]
            out.append(round(float(np.mean(times)), 2) if len(times) == len(phase) else None)
        return out

    def describe(self) -> str:
        numbers = sorted({r.series_number for phase in self.grid for r in phase})
        what = f"series {numbers[0]}" if len(numbers) == 1 else f"series {numbers[0]}-{numbers[-1]}"
        return f"{what} {self.first.series_description!r} ({self.n_slices} slices x {self.n_phases} phases)"


def _name(r: FrameRecord) -> str:
    return f"series {r.series_number} {r.series_description!r}"


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(min(1.0, abs(float(np.dot(a, b))))))


def _by_position(records: Sequence[FrameRecord], normal: np.ndarray) -> List[List[FrameRecord]]:
    """Records clustered by position along ``normal``, clusters in ascending order."""
    ordered = sorted(records, key=lambda r: float(np.dot(r.position, normal)))
    groups: List[List[FrameRecord]] = []
    last = None
    for r in ordered:
        d = float(np.dot(r.position, normal))
        if last is None or d - last > POSITION_TOL_MM:
            groups.append([])
        groups[-1].append(r)
        last = d
    return groups


def _skip_reason(records: Sequence[FrameRecord]) -> Optional[str]:
    first = records[0]
    if any("LOCALIZER" in r.image_type for r in records):
        return "localiser"
    normal = first.normal
    if any(_angle_deg(r.normal, normal) > GROUP_ANGLE_DEG for r in records) and not _is_cine(records):
        return "several orientations without cardiac phases (localiser)"
    if not _is_cine(records):
        return "one image per slice position: not a cine (static or localiser series)"
    return None


def _is_cine(records: Sequence[FrameRecord]) -> bool:
    counts: Dict[Tuple[float, ...], int] = defaultdict(int)
    for r in records:
        counts[tuple(np.round(r.position, 2))] += 1
    return max(counts.values()) > 1


def _candidate_groups(series: Dict[str, List[FrameRecord]]) -> List[List[FrameRecord]]:
    """Cine series that make one stack each; single-position series of one study, frame of reference and matrix
    with parallel normals are joined (the one-series-per-slice export)."""
    groups: List[List[FrameRecord]] = []
    singles: List[List[FrameRecord]] = []
    for records in series.values():
        (singles if len(_by_position(records, records[0].normal)) == 1 else groups).append(list(records))
    joined: List[List[FrameRecord]] = []
    for records in sorted(singles, key=lambda rs: (rs[0].series_number, rs[0].series)):
        f = records[0]
        for group in joined:
            g = group[0]
            same = (g.study, g.frame_of_reference, g.rows, g.columns) == (
                f.study,
                f.frame_of_reference,
                f.rows,
                f.columns,
            )
            if same and _angle_deg(g.normal, f.normal) <= GROUP_ANGLE_DEG:
                group.extend(records)
                break
        else:
            joined.append(list(records))
    return groups + joined


def _check_plane(records: Sequence[FrameRecord]) -> None:
    first = records[0]
    row0, col0 = np.asarray(first.orientation[:3]), np.asarray(first.orientation[3:])
    for r in records:
        if (r.rows, r.columns) != (first.rows, first.columns):
            raise CMRAssistError(
                f"{_name(r)}: matrix {r.rows}x{r.columns} differs from {first.rows}x{first.columns} in the same stack"
            )
        if not np.allclose(r.pixel_spacing, first.pixel_spacing, rtol=1e-3, atol=1e-4):
            raise CMRAssistError(
                f"{_name(r)}: pixel spacing {r.pixel_spacing} differs from {first.pixel_spacing} in the same stack"
            )
        angle = max(_angle_deg(np.asarray(r.orientation[:3]), row0), _angle_deg(np.asarray(r.orientation[3:]), col0))
        if angle > ORIENTATION_TOL_DEG:
            raise CMRAssistError(
                f"{_name(r)}: slice orientation differs by {angle:.1f} degrees from the rest of the stack "
                f"(image {r.instance_number}); the slices do not form one short-axis stack"
            )


def _check_slices(slices: List[List[FrameRecord]], normal: np.ndarray) -> float:
    """Uniform spacing along the normal and no in-plane shift between slices; returns the slice spacing (mm)."""
    where = [float(np.dot(s[0].position, normal)) for s in slices]
    gaps = np.diff(where)
    spacing = float(np.median(gaps))
    if np.any(np.abs(gaps - spacing) > max(POSITION_TOL_MM, SPACING_TOL * spacing)):
        text = ", ".join(f"{g:.2f}" for g in gaps)
        raise CMRAssistError(
            f"{_name(slices[0][0])}: slice spacing is not uniform (gaps {text} mm): a slice is missing, repeated "
            "or moved"
        )
    base = np.asarray(slices[0][0].position) - where[0] * normal
    for s, d in zip(slices, where):
        shift = float(np.linalg.norm(np.asarray(s[0].position) - d * normal - base))
        if shift > 10 * POSITION_TOL_MM:
            raise CMRAssistError(
                f"{_name(s[0])}: the slice at {d:.1f} mm is shifted {shift:.1f} mm in-plane from the rest of the stack"
            )
    return spacing


def _phases(slices: List[List[FrameRecord]], normal: np.ndarray) -> List[List[FrameRecord]]:
    """``grid[phase][slice]``; refuses duplicated and missing phases."""
    ordered = []
    for s in slices:
        keys = [r.phase_key for r in s]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            r = s[0]
            what = (
                f"trigger time {dupes[0][0]:g} ms"
                if r.trigger_time is not None
                else f"temporal position {dupes[0][0]:g}"
            )
            raise CMRAssistError(
                f"{_name(r)}: duplicated phase: {what} appears {keys.count(dupes[0])} times at the slice at "
                f"{float(np.dot(r.position, normal)):.1f} mm"
            )
        ordered.append(sorted(s, key=lambda r: r.phase_key))
    counts = [len(s) for s in ordered]
    expected = max(set(counts), key=counts.count)
    declared = slices[0][0].n_phases
    if declared and declared > 1 and expected != declared:
        raise CMRAssistError(
            f"{_name(slices[0][0])}: missing or extra phases: every slice has {expected} phases but the series "
            f"declares {declared} (Cardiac Number of Images)"
        )
    for s in ordered:
        if len(s) != expected:
            where = float(np.dot(s[0].position, normal))
            missing = "missing phase(s)" if len(s) < expected else "extra phase(s)"
            raise CMRAssistError(
                f"{_name(s[0])}: {missing}: the slice at {where:.1f} mm has {len(s)} phases, the other slices {expected}"
            )
    return [[ordered[z][t] for z in range(len(ordered))] for t in range(expected)]


def stack_of(records: List[FrameRecord]) -> CineStack:
    """The checked cine stack of one group of records (see :func:`find_cines`)."""
    _check_plane(records)
    normal = records[0].normal
    slices = _by_position(records, normal)
    spacing = _check_slices(slices, normal)
    return CineStack(grid=_phases(slices, normal), slice_spacing=spacing)


def find_cines(records: List[FrameRecord]) -> Tuple[List[CineStack], List[SkippedSeries]]:
    """The short-axis cine stacks among ``records`` and the series left out (with why).

    Raises:
        CMRAssistError: a cine with missing or duplicated phases, or slices of inconsistent orientation, matrix,
            pixel spacing or slice spacing (the message names the series).
    """
    series: Dict[str, List[FrameRecord]] = defaultdict(list)
    for r in records:
        series[r.series].append(r)
    skipped, cine_series = [], {}
    for uid, recs in series.items():
        reason = _skip_reason(recs)
        if reason is None:
            cine_series[uid] = recs
        else:
            skipped.append(SkippedSeries(uid, recs[0].series_number, recs[0].series_description, reason))
    stacks = []
    for group in _candidate_groups(cine_series):
        if len(_by_position(group, group[0].normal)) < 2:
            view = "long-axis view" if LONG_AXIS.search(group[0].series_description) else "one slice position"
            for uid in sorted({r.series for r in group}):
                r = series[uid][0]
                skipped.append(SkippedSeries(uid, r.series_number, r.series_description, f"single-slice cine ({view})"))
            continue
        stacks.append(stack_of(group))
    stacks.sort(key=lambda s: (s.first.study, s.first.series_number))
    return stacks, sorted(skipped, key=lambda s: (s.series_number, s.series))
