"""Synthetic short-axis cine phantoms with exact labels (1 RV, 2 MYO, 3 LV), for tests and the demo.

Anatomy (in mm, slice axis = long axis, base at low slice index as in ACDC): a truncated-ellipsoid LV
cavity inside a myocardial shell, tapering to the apex and open towards the outflow tract in the most basal
slice; an RV crescent wrapped around the septum on the image's left, shorter than the LV; an unlabelled
atrium above the base. Beating: the cavities shrink and the wall thickens (myocardial area kept) from ED to
ES and relax back. Contrast is bSSFP-like (bright blood, dark myocardium, mid-grey body, dark lungs), with
Rician noise, a smooth coil-bias field and partial volume from supersampling.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from CMRAssistCore.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY

SUPERSAMPLE_INPLANE = 2
SUPERSAMPLE_SLICE = 3


@dataclass(frozen=True)
class PhantomAnatomy:
    """Random but plausible shape, contrast and acquisition parameters of one phantom subject."""

    n_slices: int
    slice_mm: float
    pixel_mm: float
    matrix: Tuple[int, int]
    heart_center_mm: Tuple[float, float]
    base_offset_mm: float
    lv_length_mm: float
    lv_radius_mm: float
    wall_mm: float
    rv_angle_rad: float
    rv_offset_mm: float
    rv_axes_mm: Tuple[float, float]
    contraction: float
    n_frames: int
    es_frame: int
    noise: float
    bias_strength: float
    scale: float
    integer_storage: bool

    @classmethod
    def random(cls, rng: np.random.Generator, *, n_frames: int = 12, apical_margin_slices: int = 0) -> "PhantomAnatomy":
        """A random anatomy; ``apical_margin_slices`` extends the stack beyond the apex (slices with no LV)."""
        slice_mm = float(rng.uniform(5.0, 10.0))
        lv_length = float(rng.uniform(70.0, 95.0))
        n_slices = int(np.clip(round(lv_length / slice_mm) + 2, 6, 17)) + int(apical_margin_slices)
        pixel_mm = float(rng.uniform(1.0, 2.0))
        fov = rng.uniform(200.0, 300.0, size=2)
        matrix = tuple(int(round(f / pixel_mm)) for f in fov)
        lv_radius = float(rng.uniform(20.0, 30.0))
        wall = float(rng.uniform(7.0, 11.0))
        return cls(
            n_slices=n_slices,
            slice_mm=slice_mm,
            pixel_mm=pixel_mm,
            matrix=matrix,  # type: ignore[arg-type]
            heart_center_mm=tuple(rng.uniform(-20.0, 20.0, size=2)),  # type: ignore[arg-type]
            base_offset_mm=float(rng.uniform(0.6, 1.2) * slice_mm),
            lv_length_mm=lv_length,
            lv_radius_mm=lv_radius,
            wall_mm=wall,
            rv_angle_rad=float(math.pi + rng.uniform(-0.35, 0.35)),  # RV towards -x, as in ACDC arrays
            rv_offset_mm=float(lv_radius + wall * rng.uniform(0.6, 1.0)),
            rv_axes_mm=(float(lv_radius * rng.uniform(0.9, 1.2)), float((lv_radius + wall) * rng.uniform(1.3, 1.6))),
            contraction=float(rng.uniform(0.25, 0.45)),
            n_frames=n_frames,
            es_frame=int(round(n_frames * rng.uniform(0.3, 0.45))),
            noise=float(rng.uniform(0.02, 0.06)),
            bias_strength=float(rng.uniform(0.1, 0.35)),
            scale=float(rng.choice([255.0, rng.uniform(300.0, 2000.0)])),
            integer_storage=bool(rng.random() < 0.5),
        )


def contraction_at(frame: int, anatomy: PhantomAnatomy) -> float:
    """0 at ED (frame 0), 1 at ES, smooth in between (ejection, then slower filling)."""
    es, n = anatomy.es_frame, anatomy.n_frames
    if frame <= es:
        return 0.5 * (1 - math.cos(math.pi * frame / max(es, 1)))
    return 0.5 * (1 + math.cos(math.pi * (frame - es) / max(n - es, 1)))


def _ellipsoid_radius(depth: np.ndarray, semi_long: float, radius: float) -> np.ndarray:
    """In-plane radius of a half ellipsoid at ``depth`` below its base plane (0 outside it)."""
    inside = (depth >= 0) & (depth < semi_long)
    return np.where(inside, radius * np.sqrt(np.clip(1 - (depth / semi_long) ** 2, 0, 1)), 0.0)


def _frame_tissue(anatomy: PhantomAnatomy, c: float, z_mm: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Tissue class per sample: 0 body, 1 RV, 2 MYO, 3 LV, 4 unlabelled atrium blood, 5 RV wall, 6 lung/air."""
    a = anatomy
    dy, dx = y - a.heart_center_mm[0], x - a.heart_center_mm[1]
    tissue = np.zeros((len(z_mm), *y.shape), dtype=np.uint8)
    # Lungs: dark regions either side of the heart (the same on every slice).
    epi_r = _epicardial_radius(a, c)
    for side in (-1, 1):
        ly, lx = dy - 10, dx - side * (epi_r + 55)
        tissue[:, (ly / 80) ** 2 + (lx / 45) ** 2 < 1] = 6
    # The heart is drawn only in a box around it (the sum of every structure's reach): 5x less work, same result.
    reach = max(epi_r, a.rv_offset_mm + max(a.rv_axes_mm) + 3) + 2 * a.pixel_mm
    rows = np.flatnonzero(np.abs(dy[:, 0]) < reach)
    cols = np.flatnonzero(np.abs(dx[0]) < reach)
    # ... and only on the samples from the atrium's top to the apex (nothing of the heart lies beyond).
    cavity_r = a.lv_radius_mm * (1 - c * a.contraction)
    length = a.lv_length_mm * (1 - 0.08 * c) + epi_r - cavity_r
    layers = np.flatnonzero((z_mm > -40) & (z_mm < length))
    if not len(rows) or not len(cols) or not len(layers):
        return tissue
    box = (slice(layers[0], layers[-1] + 1), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    heart = _heart_tissue(a, c, z_mm[box[0]], y[box[1:]], x[box[1:]])
    tissue[box] = np.where(heart > 0, heart, tissue[box])
    return tissue


def _epicardial_radius(a: PhantomAnatomy, c: float) -> float:
    cavity_r = a.lv_radius_mm * (1 - c * a.contraction)
    # Wall thickens as the cavity shrinks: myocardial area at the equator is kept.
    return math.sqrt(cavity_r**2 + (a.lv_radius_mm + a.wall_mm) ** 2 - a.lv_radius_mm**2)


def _heart_tissue(a: PhantomAnatomy, c: float, z_mm: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """RV (wall and cavity), LV myocardium and cavity, and atrium per sample; 0 elsewhere."""
    cavity_r = a.lv_radius_mm * (1 - c * a.contraction)
    length = a.lv_length_mm * (1 - 0.08 * c)
    epi_r = _epicardial_radius(a, c)
    wall = epi_r - cavity_r
    depth = z_mm[:, None, None] - 0.0
    dy, dx = y - a.heart_center_mm[0], x - a.heart_center_mm[1]
    rho = np.sqrt(dy**2 + dx**2)[None]
    r_cav = _ellipsoid_radius(depth, length, cavity_r)
    r_epi = _ellipsoid_radius(depth, length + wall, epi_r)
    tissue = np.zeros(np.broadcast_shapes(depth.shape, rho.shape), dtype=np.uint8)
    # RV crescent: ellipse beside the LV, minus the LV epicardium; shorter than the LV. Its centre follows the
    # epicardium towards the apex, so the RV stays against the septum on every slice, as in real hearts.
    offset = a.rv_offset_mm * r_epi / epi_r
    ry_c = a.heart_center_mm[0] + offset * math.sin(a.rv_angle_rad)
    rx_c = a.heart_center_mm[1] + offset * math.cos(a.rv_angle_rad)
    rv_scale = _ellipsoid_radius(depth, 0.75 * length, 1.0) * (1 - 0.6 * c * a.contraction)
    ca, sa = math.cos(a.rv_angle_rad), math.sin(a.rv_angle_rad)
    u = (x - rx_c) * ca + (y - ry_c) * sa
    v = -(x - rx_c) * sa + (y - ry_c) * ca
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(rv_scale > 0, (u / (a.rv_axes_mm[0] * rv_scale)) ** 2 + (v / (a.rv_axes_mm[1] * rv_scale)) ** 2, 9)
        q_wall = np.where(
            rv_scale > 0, (u / (a.rv_axes_mm[0] * rv_scale + 3)) ** 2 + (v / (a.rv_axes_mm[1] * rv_scale + 3)) ** 2, 9
        )
    tissue[q_wall < 1] = 5
    tissue[q < 1] = RV_CAVITY
    myo = rho < r_epi
    tissue[myo] = LV_MYOCARDIUM
    tissue[rho < r_cav] = LV_CAVITY
    # Basal opening (LV outflow tract): no myocardium in a sector of the most basal ~slice.
    angle = np.arctan2(dy, dx)[None]
    outflow = (depth < a.slice_mm * 0.9) & (np.abs(np.angle(np.exp(1j * (angle - (a.rv_angle_rad - 0.9))))) < 0.7)
    tissue[myo & outflow] = LV_CAVITY
    # Atrium above the base: bright blood that is not labelled.
    atrium = (depth < 0) & (depth > -40) & (rho < cavity_r * 0.9)
    tissue[atrium] = 4
    return tissue


_INTENSITY = {0: 0.35, RV_CAVITY: 1.0, LV_MYOCARDIUM: 0.22, LV_CAVITY: 1.0, 4: 0.95, 5: 0.25, 6: 0.04}


def render_frame(anatomy: PhantomAnatomy, frame: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Image (float, arbitrary scale) and label (uint8) arrays ``(slices, rows, cols)`` of one frame."""
    a = anatomy
    c = contraction_at(frame, a)
    ny, nx = a.matrix
    s = SUPERSAMPLE_INPLANE
    ys = (np.arange(ny * s) + 0.5) / s * a.pixel_mm - ny * a.pixel_mm / 2
    xs = (np.arange(nx * s) + 0.5) / s * a.pixel_mm - nx * a.pixel_mm / 2
    y, x = np.meshgrid(ys, xs, indexing="ij")
    centres = np.arange(a.n_slices) * a.slice_mm - a.base_offset_mm
    sub = (np.arange(SUPERSAMPLE_SLICE) + 0.5) / SUPERSAMPLE_SLICE - 0.5
    z_fine = (centres[:, None] + sub[None] * a.slice_mm).ravel()
    tissue = _frame_tissue(a, c, z_fine, y, x)
    lut = np.array([_INTENSITY[k] for k in range(7)], dtype=np.float32)
    fine = lut[tissue].reshape(a.n_slices, SUPERSAMPLE_SLICE, ny, s, nx, s)
    image = fine.mean(axis=(1, 3, 5))  # partial volume
    body = ((y / (ny * a.pixel_mm * 0.45)) ** 2 + (x / (nx * a.pixel_mm * 0.47)) ** 2 < 1)[::s, ::s]
    image *= body[None]
    label = tissue.reshape(a.n_slices, SUPERSAMPLE_SLICE, ny, s, nx, s)[:, SUPERSAMPLE_SLICE // 2, :, s // 2, :, s // 2]
    label = np.where(np.isin(label, (RV_CAVITY, LV_MYOCARDIUM, LV_CAVITY)), label, 0).astype(np.uint8)
    # Smooth coil bias: brighter towards one side of the chest, as a surface coil gives.
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    g = rng.normal(size=3)
    bias = np.exp(a.bias_strength * (g[0] * yy + g[1] * xx + 0.5 * g[2] * yy * xx))
    image = image * bias[None]
    noisy = np.abs(image + a.noise * (rng.normal(size=image.shape) + 1j * rng.normal(size=image.shape)))  # Rician
    return (noisy * a.scale).astype(np.float32), label


def _to_image(array: np.ndarray, anatomy: PhantomAnatomy, integer: bool) -> sitk.Image:
    img = sitk.GetImageFromArray(np.round(array).astype(np.int16) if integer else array)
    spacing = (anatomy.pixel_mm, anatomy.pixel_mm, anatomy.slice_mm)
    img.SetSpacing(spacing)
    return img


@dataclass
class Phantom:
    """One synthetic subject: ED and ES frames with labels, and the whole cine."""

    name: str
    anatomy: PhantomAnatomy
    ed_image: sitk.Image
    ed_label: sitk.Image
    es_image: sitk.Image
    es_label: sitk.Image
    cine: Optional[sitk.Image]

    @property
    def info(self) -> Dict[str, object]:
        """Image info; frame numbers count from 1 as in ACDC's ``Info.cfg`` (frame 1 = the cine's first)."""
        a = self.anatomy
        return {
            "patient": self.name,
            "group": "PHANTOM",
            "n_frames": a.n_frames,
            "ed_frame": 1,
            "es_frame": a.es_frame + 1,
            "slice_mm": a.slice_mm,
            "pixel_mm": a.pixel_mm,
        }


def make_phantom(
    seed: int, *, name: Optional[str] = None, n_frames: int = 12, with_cine: bool = True, apical_margin_slices: int = 0
) -> Phantom:
    """Build one phantom deterministically from ``seed``.

    Args:
        seed: random seed; the same seed gives the same phantom.
        name: subject name; ``phantom{seed:03d}`` by default.
        n_frames: frames in the cine (ED is frame 0).
        with_cine: also render every frame as a 4D image.
        apical_margin_slices: extra slices beyond the apex.
    """
    rng = np.random.default_rng(seed)
    anatomy = PhantomAnatomy.random(rng, n_frames=n_frames, apical_margin_slices=apical_margin_slices)
    frames = range(n_frames) if with_cine else (0, anatomy.es_frame)
    rendered = {t: render_frame(anatomy, t, rng) for t in frames}
    integer = anatomy.integer_storage
    ed_img, ed_lab = rendered[0]
    es_img, es_lab = rendered[anatomy.es_frame]
    cine = None
    if with_cine:
        cine = sitk.JoinSeries([_to_image(rendered[t][0], anatomy, integer) for t in range(n_frames)])

    def lab(a: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(a)
        img.SetSpacing((anatomy.pixel_mm, anatomy.pixel_mm, anatomy.slice_mm))
        return img

    return Phantom(
        name=name or f"phantom{seed:03d}",
        anatomy=anatomy,
        ed_image=_to_image(ed_img, anatomy, integer),
        ed_label=lab(ed_lab),
        es_image=_to_image(es_img, anatomy, integer),
        es_label=lab(es_lab),
        cine=cine,
    )


def make_phantoms(n: int, seed: int, **kwargs) -> List[Phantom]:
    """``n`` phantoms with seeds ``seed, seed+1, ...``."""
    return [make_phantom(seed + i, **kwargs) for i in range(n)]
