"""Where studies come from and go: the checked MONAI Label datastore, studies folders, the ACDC importer and
the synthetic phantoms.
"""

from cmrassist_server.io.acdc import import_acdc
from cmrassist_server.io.datastore import CheckedDatastore
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.io.studies import StudiesWriter, phantom_studies, training_items

__all__ = ["CheckedDatastore", "StudiesWriter", "import_acdc", "make_phantom", "phantom_studies", "training_items"]
