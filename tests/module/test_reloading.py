"""*Reload* reloads the module's libraries too: a changed file in the package is what runs afterwards, also
through the modules that import it, and a file with an error leaves the running code in place."""

import sys

import pytest

from CMRAssistLib.reloading import reload_libraries


def _package(root, value):
    pkg = root / "cmr_reload_pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "measures.py").write_text(f"VALUE = {value}\n")
    (pkg / "panel.py").write_text("from .measures import VALUE\n\n\ndef shown():\n    return VALUE\n")
    return pkg


def test_a_changed_library_file_runs_after_reload_through_its_importers(tmp_path, monkeypatch):
    pkg = _package(tmp_path, 1)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cmr_reload_pkg.panel

    assert cmr_reload_pkg.panel.shown() == 1
    (pkg / "measures.py").write_text("VALUE = 2\n")
    names = reload_libraries(["cmr_reload_pkg"])
    assert names == ["cmr_reload_pkg", "cmr_reload_pkg.measures", "cmr_reload_pkg.panel"]
    assert sys.modules["cmr_reload_pkg.panel"].shown() == 2
    (pkg / "measures.py").write_text("VALUE = (\n")
    with pytest.raises(SyntaxError):
        reload_libraries(["cmr_reload_pkg"])
    assert sys.modules["cmr_reload_pkg.panel"].shown() == 2  # the code that ran before still runs
    for name in names:
        sys.modules.pop(name, None)
