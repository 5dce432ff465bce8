import numpy as np
import SimpleITK as sitk

from cmrassist_server.io.phantoms import make_phantom
from CMRAssistCore.labels import LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY


def arr(img):
    return sitk.GetArrayFromImage(img)


def test_phantom_geometry_and_labels_are_in_the_stated_ranges():
    for seed in range(4):
        p = make_phantom(seed, with_cine=False)
        sx, sy, sz = p.ed_image.GetSpacing()
        assert 1.0 <= sx == sy <= 2.0 and 5.0 <= sz <= 10.0
        assert 6 <= p.ed_image.GetSize()[2] <= 17
        assert set(np.unique(arr(p.ed_label))) <= {0, 1, 2, 3}
        assert {RV_CAVITY, LV_MYOCARDIUM, LV_CAVITY} <= set(np.unique(arr(p.ed_label)))


def test_contrast_is_bssfp_like_bright_blood_dark_myocardium():
    p = make_phantom(3, with_cine=False)
    image, label = arr(p.ed_image).astype(float), arr(p.ed_label)
    lv, myo = image[label == LV_CAVITY].mean(), image[label == LV_MYOCARDIUM].mean()
    assert lv > 2.5 * myo


def test_lv_tapers_to_apex_and_rv_sits_on_the_left_and_ends_before_the_apex():
    p = make_phantom(5, with_cine=False)
    label = arr(p.ed_label)
    lv_area = (label == LV_CAVITY).sum(axis=(1, 2))
    present = np.nonzero(lv_area)[0]
    mid, last = present[len(present) // 3], present[-1]
    assert lv_area[last] < lv_area[mid]
    assert (label[0] > 0).sum() == 0  # atrium slice above the base carries no label
    rv = np.argwhere(label == RV_CAVITY)
    lv = np.argwhere(label == LV_CAVITY)
    assert rv[:, 2].mean() < lv[:, 2].mean()  # RV at lower column index, as in ACDC arrays
    assert rv[:, 0].max() < lv[:, 0].max()


def test_myocardium_encloses_the_cavity_except_at_the_basal_opening():
    from scipy import ndimage

    p = make_phantom(7, with_cine=False)
    label = arr(p.ed_label)
    enclosed = []
    for z in range(label.shape[0]):
        if (label[z] == LV_CAVITY).sum() == 0:
            continue
        filled = ndimage.binary_fill_holes(label[z] == LV_MYOCARDIUM)
        enclosed.append(bool(np.all(filled[label[z] == LV_CAVITY])))
    assert not enclosed[0], "the most basal LV slice should be open towards the outflow tract"
    assert all(enclosed[1:])


def test_heart_beats_ed_to_es_and_cine_frames_match():
    p = make_phantom(2, n_frames=8)
    ed, es = arr(p.ed_label), arr(p.es_label)
    sp = np.prod(p.ed_image.GetSpacing())
    edv, esv = (ed == LV_CAVITY).sum() * sp, (es == LV_CAVITY).sum() * sp
    assert 0.3 < (edv - esv) / edv < 0.8
    myo_ed, myo_es = (ed == LV_MYOCARDIUM).sum(), (es == LV_MYOCARDIUM).sum()
    assert abs(myo_ed - myo_es) / myo_ed < 0.2  # myocardium roughly conserved
    cine = arr(p.cine)
    assert cine.shape[0] == 8 and p.cine.GetDimension() == 4
    assert 0 < p.anatomy.es_frame < 8


def test_same_seed_same_phantom_and_noise_present():
    a, b = make_phantom(9, with_cine=False), make_phantom(9, with_cine=False)
    assert np.array_equal(arr(a.ed_image), arr(b.ed_image))
    image, label = arr(a.ed_image).astype(float), arr(a.ed_label)
    assert image[label == LV_CAVITY].std() > 0  # noise, bias and partial volume
