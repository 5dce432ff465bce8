"""The layout promises of docs/architecture.md, checked on the source: the door between the extension and the
server, the one-way dependencies between the server's packages, and the size limits."""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "server")
PACKAGE = os.path.join(SERVER, "cmrassist_server")
STDLIB = set(sys.stdlib_module_names)


def python_files(folder):
    for d, _, files in os.walk(folder):
        if "__pycache__" not in d:
            yield from (os.path.join(d, f) for f in files if f.endswith(".py"))


def imported_modules(path):
    """Absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(open(path).read(), path)
    package = os.path.relpath(os.path.dirname(path), SERVER).replace(os.sep, ".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def test_the_shared_core_imports_only_stdlib_numpy_and_simpleitk():
    for path in python_files(os.path.join(ROOT, "CMRAssist", "CMRAssistCore")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top in STDLIB or top in ("numpy", "SimpleITK", "CMRAssistCore", ""), f"{path} imports {name}"


def test_the_server_reaches_the_extension_through_the_shared_core_only():
    for path in python_files(SERVER):
        for name in imported_modules(path):
            assert not name.startswith("CMRAssistLib"), f"{path} imports {name}: use CMRAssistCore"


#: Which packages each package may import (docs/architecture.md); a new edge must be added here on purpose.
ALLOWED = {
    "core": set(),
    "accounts": {"core"},
    "imaging": {"core"},
    "annotations": {"core", "imaging"},
    "io": {"core", "imaging", "annotations"},
    "slice_position": {"core", "imaging"},
    "segmentation": {"core", "imaging", "annotations", "io", "slice_position"},
    "qc": {"core", "imaging", "io", "segmentation"},
    "release": {"core", "imaging", "io", "slice_position", "segmentation", "qc"},
    "reporting": {"core", "imaging", "annotations", "io", "slice_position", "segmentation", "qc"},
    "cohort": {"core", "imaging", "io", "segmentation", "qc"},
    "api": {
        "core",
        "accounts",
        "imaging",
        "annotations",
        "io",
        "slice_position",
        "segmentation",
        "qc",
        "release",
        "reporting",
        "cohort",
    },
}


def test_server_packages_depend_one_way():
    found = {name for name in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py"))}
    assert found == set(ALLOWED), "a package was added or removed: update ALLOWED and docs/architecture.md"
    for package in ALLOWED:
        for path in python_files(os.path.join(PACKAGE, package)):
            for name in imported_modules(path):
                parts = name.split(".")
                # launcher.py (start and stop a server process) imports nothing of the packages: any may use it.
                if parts[0] == "cmrassist_server" and len(parts) > 1 and parts[1] not in (package, "launcher"):
                    assert parts[1] in ALLOWED[package], f"{os.path.relpath(path, ROOT)} imports {name}"


def function_lengths(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("folder", ["server", "CMRAssist"])
def test_no_function_over_60_lines_and_no_module_over_400(folder):
    long = []
    for path in python_files(os.path.join(ROOT, folder)):
        lines = sum(1 for _ in open(path))
        if lines > 400:
            long.append(f"{os.path.relpath(path, ROOT)}: {lines} lines")
        long += [
            f"{os.path.relpath(path, ROOT)}:{line} {name}() {n} lines"
            for name, line, n in function_lengths(path)
            if n > 60
        ]
    assert not long, "\n".join(long)
