"""The segments' terminology is made of codes from the DICOM master lists Slicer ships, loaded by Slicer's own
Terminologies logic (the files as Kitware ships them with trame-slicer)."""

import itertools
import os

import pytest
import slicer
from slicer_app import terminology_folder

from CMRAssistCore.labels import COLOURS, LV_CAVITY, LV_MYOCARDIUM, RV_CAVITY, TERMINOLOGY

pytestmark = pytest.mark.slicer


@pytest.fixture(scope="module")
def lists():
    """(logic, terminology context name, region context name) with Slicer's DICOM master lists loaded."""
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    folder = terminology_folder()
    terminology = logic.LoadTerminologyFromFile(
        os.path.join(folder, "SegmentationCategoryTypeModifier-DICOM-Master.term.json")
    )
    regions = logic.LoadRegionContextFromFile(os.path.join(folder, "AnatomicRegionAndModifier-DICOM-Master.term.json"))
    assert terminology and regions
    return logic, terminology, regions


def codes_of_types(logic, terminology: str):
    """{(category code, type code)} of every type of the terminology."""
    found = set()
    for c in range(logic.GetNumberOfCategoriesInTerminology(terminology)):
        category = slicer.vtkSlicerTerminologyCategory()
        logic.GetNthCategoryInTerminology(terminology, c, category)
        for t in range(logic.GetNumberOfTypesInTerminologyCategory(terminology, category)):
            kind = slicer.vtkSlicerTerminologyType()
            logic.GetNthTypeInTerminologyCategory(terminology, category, t, kind)
            found.add((category.GetCodeValue(), kind.GetCodeValue()))
    return found


def codes_of_regions(logic, regions: str):
    found = set()
    for r in range(logic.GetNumberOfRegionsInRegionContext(regions)):
        region = slicer.vtkSlicerTerminologyType()
        logic.GetNthRegionInRegionContext(regions, r, region)
        found.add(region.GetCodeValue())
    return found


def entry(text: str):
    parsed = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(text, parsed), text
    return parsed


def test_every_segment_is_coded_from_slicers_dicom_master_lists(lists):
    logic, terminology, regions = lists
    types, places = codes_of_types(logic, terminology), codes_of_regions(logic, regions)
    for value, text in TERMINOLOGY.items():
        parsed = entry(text)
        assert parsed.GetTerminologyContextName() == terminology and parsed.GetRegionContextName() == regions
        category, kind = parsed.GetCategoryObject().GetCodeValue(), parsed.GetTypeObject().GetCodeValue()
        assert (category, kind) in types, f"label {value}: type {kind} is not in {terminology}"
        assert parsed.GetRegionObject().GetCodeValue() in places, f"label {value}: region not in {regions}"


def test_a_cavity_is_the_blood_in_its_ventricle_not_the_ventricle():
    lv, rv, myo = entry(TERMINOLOGY[LV_CAVITY]), entry(TERMINOLOGY[RV_CAVITY]), entry(TERMINOLOGY[LV_MYOCARDIUM])
    assert lv.GetTypeObject().GetCodeValue() != "87878005"  # SCT Left ventricle: the whole ventricle
    assert lv.GetTypeObject().GetCodeValue() == rv.GetTypeObject().GetCodeValue() == "87612001"  # Blood
    assert lv.GetRegionObject().GetCodeValue() == myo.GetRegionObject().GetCodeValue() == "87878005"
    assert rv.GetRegionObject().GetCodeValue() == "53085002"
    assert myo.GetTypeObject().GetCodeValue() != "74281007"  # not in the lists Slicer ships


def test_the_three_segments_can_be_told_apart():
    for a, b in itertools.combinations(COLOURS.values(), 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 > 0.3
