"""Labels and who made them: per-annotator versions, review (accept, STAPLE consensus), which labels training
learns from, propagation across cine frames, simulated non-expert labels.
"""

from cmrassist_server.annotations.nonexpert import NonExpertProfile, simulate_nonexpert
from cmrassist_server.annotations.propagation import PropagationOptions, propagate_cine
from cmrassist_server.annotations.review import VersionService
from cmrassist_server.annotations.versions import LabelVersions

__all__ = [
    "LabelVersions",
    "NonExpertProfile",
    "PropagationOptions",
    "VersionService",
    "propagate_cine",
    "simulate_nonexpert",
]
