import math

import numpy as np
import pytest

from CMRAssistCore.measures import (
    class_volumes_ml,
    dice,
    hausdorff95_mm,
    overlap_table,
    slice_areas_mm2,
    ventricular_function,
)


def box_label(shape, boxes):
    lab = np.zeros(shape, np.uint8)
    for value, (z0, z1, y0, y1, x0, x1) in boxes.items():
        lab[z0:z1, y0:y1, x0:x1] = value
    return lab


def test_volumes_ef_and_mass_match_hand_computation():
    spacing = (10.0, 1.5, 1.5)  # voxel = 22.5 mm^3
    ed = box_label((8, 64, 64), {2: (1, 7, 10, 40, 10, 40), 3: (1, 7, 15, 35, 15, 35), 1: (1, 5, 45, 60, 5, 25)})
    es = box_label((8, 64, 64), {2: (1, 7, 10, 40, 10, 40), 3: (1, 7, 20, 30, 20, 30), 1: (1, 5, 50, 60, 5, 25)})
    lv_ed_vox, lv_es_vox = 6 * 20 * 20, 6 * 10 * 10
    myo_ed_vox = 6 * 30 * 30 - lv_ed_vox
    m = ventricular_function(ed, es, spacing)
    assert m["lv_edv_ml"] == pytest.approx(lv_ed_vox * 22.5 / 1000)
    assert m["lv_esv_ml"] == pytest.approx(lv_es_vox * 22.5 / 1000)
    assert m["lv_ef_pct"] == pytest.approx(100 * (lv_ed_vox - lv_es_vox) / lv_ed_vox)
    assert m["lv_mass_g"] == pytest.approx(myo_ed_vox * 22.5 / 1000 * 1.05)
    assert m["rv_edv_ml"] == pytest.approx(4 * 15 * 20 * 22.5 / 1000)
    assert m["rv_sv_ml"] == pytest.approx((4 * 15 * 20 - 4 * 10 * 20) * 22.5 / 1000)
    areas = slice_areas_mm2(ed, spacing)
    assert areas["lv_cavity"][3] == pytest.approx(400 * 2.25) and areas["lv_cavity"][0] == 0
    assert class_volumes_ml(ed, spacing)["lv_cavity"] == pytest.approx(m["lv_edv_ml"])


def test_ef_is_nan_without_lv():
    empty = np.zeros((3, 8, 8), np.uint8)
    assert math.isnan(ventricular_function(empty, empty, (1, 1, 1))["lv_ef_pct"])


def test_dice_and_hd95_on_shifted_cubes():
    ref = box_label((20, 40, 40), {3: (5, 15, 10, 30, 10, 30)})
    pred = box_label((20, 40, 40), {3: (5, 15, 10, 30, 13, 33)})  # shifted 3 columns
    assert dice(pred, ref, 3) == pytest.approx(2 * 10 * 20 * 17 / (2 * 10 * 20 * 20))
    assert hausdorff95_mm(pred, ref, 3, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert hausdorff95_mm(ref, ref, 3, (1, 1, 1)) == 0.0
    assert dice(ref, ref, 1) == 1.0 and math.isnan(hausdorff95_mm(pred, ref, 1, (1, 1, 1)))
    table = overlap_table(pred, ref, (1, 1, 1))
    assert set(table) == {"LV", "MYO", "RV"} and table["LV"]["dice"] < 1
    with pytest.raises(ValueError):
        overlap_table(pred[:-1], ref, (1, 1, 1))


def test_hd95_from_the_distance_map_equals_all_pairs():
    from CMRAssistCore.measures import _directed_distances, _distances_to_surface_mm, _surface_points_mm

    rng = np.random.default_rng(0)
    a, b = np.zeros((6, 40, 50), bool), np.zeros((6, 40, 50), bool)
    a[1:5, 5:30, 10:40], b[2:6, 12:36, 4:33] = True, True
    a &= rng.random(a.shape) > 0.1  # ragged, with holes
    spacing = (8.0, 1.3, 1.4)
    fast = np.sort(_distances_to_surface_mm(a, b, spacing))
    slow = np.sort(_directed_distances(_surface_points_mm(a, spacing), _surface_points_mm(b, spacing)))
    np.testing.assert_allclose(fast, slow, atol=1e-4)


def test_the_one_dice_for_binary_soft_and_per_slice_masks():
    from CMRAssistCore.measures import dice, mask_dice

    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2], b[0, 1:3] = True, True  # slice 0: 8 and 8 pixels, 4 shared; slice 1: empty in both
    assert mask_dice(a, b) == 0.5 and dice(a.astype(int) * 3, b.astype(int) * 3, 3) == 0.5
    assert mask_dice(a.reshape(2, -1), b.reshape(2, -1), axis=1).tolist() == [0.5, 1.0]
    soft = np.full((1, 4, 4), 1e-9)
    assert mask_dice(soft, np.zeros_like(soft), axis=(-2, -1), eps=1e-6).tolist() == [1.0]
    assert mask_dice(soft, np.zeros_like(soft), axis=(-2, -1)).tolist() == [0.0]
    assert mask_dice(np.zeros(3, bool), np.zeros(3, bool), empty=0.0) == 0.0
