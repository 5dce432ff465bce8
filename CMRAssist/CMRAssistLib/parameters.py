"""The module's GUI state kept in the scene: a ``vtkMRMLScriptedModuleNode`` singleton, the node Slicer's
``parameterNodeWrapper`` keeps a scripted module's state in (written here through the node's own parameters:
slicer-core, where the tests run, ships the node but not the wrapper). The state survives *Reload*, is saved with
the scene, and is reset by *File > Close Scene*, as every module's parameter node is."""

from typing import Any, Callable, Dict, Optional

#: The singleton tag of the module's parameter node.
TAG = "CMRAssist"
#: What is kept, and its type.
FIELDS: Dict[str, Callable[[str], Any]] = {"strategy": str, "study": str, "frame": int, "qc_threshold": float}


class ModuleParameters:
    """Typed access to the module's parameter node (created when missing).

    Args:
        scene: the MRML scene (``slicer.mrmlScene``).
    """

    def __init__(self, scene):
        self.scene = scene

    def node(self):
        node = self.scene.GetSingletonNode(TAG, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)  # CreateNodeByClass hands over a reference (as Slicer's getParameterNode does)
            node.SetSingletonTag(TAG)
            node.SetModuleName(TAG)
            node = self.scene.AddNode(node)
        return node

    def get(self, name: str) -> Optional[Any]:
        """The kept value, ``None`` when unset or unreadable (a scene saved by another version)."""
        raw = self.node().GetParameter(name)
        if not raw:
            return None
        try:
            return FIELDS[name](raw)
        except ValueError:
            return None

    def set(self, name: str, value: Optional[Any]) -> None:
        if name not in FIELDS:
            raise KeyError(f"the module keeps no parameter {name!r}")
        self.node().SetParameter(name, "" if value is None else str(value))
