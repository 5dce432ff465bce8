"""*Reload* in Slicer's developer section reloads the module file only; the panels, the scene layer and the
measures live in CMRAssistLib and CMRAssistCore, so ``onReload`` reloads them first (as SlicerNNUnet does)."""

import importlib
import sys
from typing import List, Sequence


def reload_libraries(packages: Sequence[str]) -> List[str]:
    """Re-import every loaded module of ``packages`` from its file; returns their names.

    The modules are dropped from ``sys.modules`` and imported again, so each one's own imports of the others
    pick up the new code in dependency order (reloading them one by one would let a module keep the classes of
    a sibling that is reloaded after it).
    """
    loaded = sorted(name for name in sys.modules if any(name == p or name.startswith(p + ".") for p in packages))
    importlib.invalidate_caches()
    saved = {name: sys.modules.pop(name) for name in loaded}
    try:
        for name in loaded:
            importlib.import_module(name)
    except Exception:
        sys.modules.update(saved)  # a file with an error: the code that ran keeps running, and the error says why
        raise
    return loaded
