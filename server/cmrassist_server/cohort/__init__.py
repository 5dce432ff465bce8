"""Cohort scale: every cine of thousands of studies segmented, checked and measured in one command
(``cmrassist analyse``), on this machine or a Ray cluster, resumably; one row per subject and a review queue.
See ``docs/scaling.md``.
"""

from cmrassist_server.cohort.analyse import AnalysisSettings, SubjectAnalyser
from cmrassist_server.cohort.checks import CheckSettings
from cmrassist_server.cohort.cluster import ClusterSettings
from cmrassist_server.cohort.models import ModelFiles
from cmrassist_server.cohort.run import CohortRun

__all__ = ["AnalysisSettings", "CheckSettings", "ClusterSettings", "CohortRun", "ModelFiles", "SubjectAnalyser"]
