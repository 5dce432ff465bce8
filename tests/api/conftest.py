"""The team server of the API tests (``bench/team_server.py``: accounts of every role on a real server)."""

import pytest
from team_server import make_team


@pytest.fixture(scope="module")
def team(phantom_studies, tmp_path_factory):
    t = make_team(phantom_studies + "_pristine", tmp_path_factory.mktemp("team"))
    yield t
    t.server.stop()
