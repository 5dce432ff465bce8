"""PySide6 patched to PythonQt's rules, so the panels are tested as Slicer runs them.

PythonQt exposes every ``Q_PROPERTY`` of a QObject as a plain attribute: ``combo.count`` is an int (so
``combo.count()`` raises ``TypeError: 'int' object is not callable``), ``button.enabled = False`` sets the property,
and the getter of the same name is hidden; setters and other methods stay. :func:`apply` gives every QObject class
of PySide6's QtCore, QtGui and QtWidgets such an attribute for each property its ``staticMetaObject`` declares.
"""

from typing import Any, List

from PySide6 import QtCore, QtGui, QtWidgets


class _QtProperty:
    """A Q_PROPERTY as PythonQt shows it on an instance; on the class, the original attribute (a static method
    such as ``QTimer.singleShot`` must stay callable there)."""

    def __init__(self, name: str, writable: bool, original: Any):
        self.name, self.writable, self.original = name, writable, original

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.original if self.original is not None else self
        return obj.property(self.name)

    def __set__(self, obj, value) -> None:
        if not self.writable or not obj.setProperty(self.name, value):
            raise AttributeError(f"property {self.name!r} of {type(obj).__name__} cannot be set to {value!r}")


def _qobject_classes() -> List[type]:
    found = []
    for module in (QtCore, QtGui, QtWidgets):
        for name in dir(module):
            cls = getattr(module, name)
            if isinstance(cls, type) and issubclass(cls, QtCore.QObject) and "staticMetaObject" in vars(cls):
                found.append(cls)
    return found


def apply() -> List[str]:
    """Patch the classes (idempotent); returns ``Class.property`` of every attribute made."""
    made = []
    for cls in _qobject_classes():
        meta = cls.staticMetaObject
        for index in range(meta.propertyOffset(), meta.propertyCount()):
            prop = meta.property(index)
            name = prop.name()
            if isinstance(vars(cls).get(name), _QtProperty):
                continue
            setattr(cls, name, _QtProperty(name, prop.isWritable(), vars(cls).get(name)))
            made.append(f"{cls.__name__}.{name}")
    return made
