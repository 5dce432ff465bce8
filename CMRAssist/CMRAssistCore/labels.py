"""Label convention shared by the Slicer module and the server (ACDC's: 1 RV, 2 MYO, 3 LV)."""

from typing import Dict, Tuple

BACKGROUND = 0
RV_CAVITY = 1
LV_MYOCARDIUM = 2
LV_CAVITY = 3

#: Foreground classes in label-value order.
CARDIAC_CLASSES: Dict[str, int] = {"rv_cavity": RV_CAVITY, "lv_myocardium": LV_MYOCARDIUM, "lv_cavity": LV_CAVITY}
#: Short names used in tables and reports.
SHORT_NAMES: Dict[int, str] = {RV_CAVITY: "RV", LV_MYOCARDIUM: "MYO", LV_CAVITY: "LV"}
#: Display colours (RGB 0-1). Not Slicer's terminology colours on purpose: Slicer recommends one colour for blood
#: wherever it is and a near-identical red for muscle, so the three segments could not be told apart while editing;
#: these are the usual cardiac-MR colours (RV blue, myocardium orange, LV red).
COLOURS: Dict[int, Tuple[float, float, float]] = {
    RV_CAVITY: (0.35, 0.55, 0.95),
    LV_MYOCARDIUM: (0.85, 0.55, 0.35),
    LV_CAVITY: (0.95, 0.25, 0.25),
}
VALID_VALUES = frozenset((BACKGROUND, RV_CAVITY, LV_MYOCARDIUM, LV_CAVITY))
#: Segment names shown in Slicer.
SEGMENT_NAMES: Dict[int, str] = {RV_CAVITY: "RV cavity", LV_MYOCARDIUM: "LV myocardium", LV_CAVITY: "LV cavity"}


TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
REGION_CONTEXT = "Anatomic codes - DICOM master list"


def _terminology(type_code: str, type_meaning: str, region_code: str, region_meaning: str) -> str:
    # Slicer's serialised terminology entry: context~category~type~type modifier~region context~region~region modifier
    return (
        f"{TERMINOLOGY_CONTEXT}~SCT^85756007^Tissue~SCT^{type_code}^{type_meaning}~^^~{REGION_CONTEXT}~"
        f"SCT^{region_code}^{region_meaning}~^^"
    )


#: What each segment is, in codes of the DICOM master lists Slicer ships (Terminologies module): a cavity is the
#: blood (SCT 87612001) in that ventricle, the myocardium is the muscle (SCT 71616004) of the left ventricle. The
#: lists have no "myocardium" or "ventricular cavity" type, and coding the cavity as the ventricle itself
#: (SCT 87878005) would claim the whole LV, myocardium included.
TERMINOLOGY: Dict[int, str] = {
    RV_CAVITY: _terminology("87612001", "Blood", "53085002", "Right Ventricle"),
    LV_MYOCARDIUM: _terminology("71616004", "Muscle", "87878005", "Left Ventricle"),
    LV_CAVITY: _terminology("87612001", "Blood", "87878005", "Left Ventricle"),
}


def parse_label_map(text: str) -> Dict[int, int]:
    """Parse a source label convention such as ``"LV=1,MYO=2,RV=3"`` into ``{source_value: our_value}``.

    Args:
        text: comma-separated ``NAME=VALUE`` pairs, names among LV, MYO, RV (case-insensitive).

    Raises:
        ValueError: on unknown names, duplicate values or missing classes.
    """
    ours = {"RV": RV_CAVITY, "MYO": LV_MYOCARDIUM, "LV": LV_CAVITY}
    mapping: Dict[int, int] = {}
    seen = set()
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"label map entry {part!r} is not NAME=VALUE (e.g. LV=1,MYO=2,RV=3)")
        name, value = (s.strip() for s in part.split("=", 1))
        if name.upper() not in ours:
            raise ValueError(f"unknown structure {name!r} in label map; use LV, MYO and RV")
        try:
            source = int(value)
        except ValueError:
            raise ValueError(f"label value {value!r} for {name} is not an integer") from None
        if source in mapping or source == 0:
            raise ValueError(f"label value {source} used twice or for background in label map {text!r}")
        mapping[source] = ours[name.upper()]
        seen.add(name.upper())
    if seen != set(ours):
        raise ValueError(f"label map {text!r} must name LV, MYO and RV once each")
    return mapping
