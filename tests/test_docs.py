"""Every code name the docs cite exists: files (``imaging/files.py``), and names in them
(``io/datastore.CheckedDatastore``, ``segmentation/predictor.py: SegmentationPredictor.segment``)."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASES = ["", "server", "server/cmrassist_server", "CMRAssist", "bench", "tests", "Testing", "Testing/Python"]
DOCS = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "Testing", "README.md")]
DOCS += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
DOCS += sorted(glob.glob(os.path.join(ROOT, "models", "*.md")))
CODE = re.compile(r"`([^`\n]+)`")
# ``dir/module.py`` optionally followed by ``: Name.attr``; or ``dir/module.Name.attr`` (no .py).
FILE_NAME = re.compile(r"^((?:[\w.-]+/)*[\w-]+\.py)(?::\s*([A-Za-z_][\w.]*))?$")
EXTENSIONS = {"md", "sh", "json", "txt", "png", "csv", "toml", "yaml", "yml", "nrrd", "gz", "ui", "pt", "npz"}
MODULE_NAME = re.compile(r"^((?:\w+/)+\w+)\.([A-Za-z_]\w*(?:\.\w+)?)$")


def _find(relative):
    """The file under one of :data:`BASES`, or anywhere in the project where its path is unique enough."""
    for base in BASES:
        path = os.path.join(ROOT, base, relative)
        if os.path.isfile(path):
            return path
    matches = [p for p in glob.glob(os.path.join(ROOT, "**", relative), recursive=True) if "/.venv/" not in p]
    return matches[0] if matches else None


def _defines(path, dotted):
    """``Name`` (or ``Name.attr``) is defined in the file: a def, class, assignment or import of that name."""
    with open(path) as f:
        source = f.read()
    for name in dotted.split("."):
        if not re.search(rf"(?m)^\s*(def|class|async def)\s+{name}\b|^\s*{name}\s*[:=]|import .*\b{name}\b", source):
            return False
    return True


def cited_names():
    for doc in DOCS:
        with open(doc) as f:
            text = f.read()
        for token in CODE.findall(text):
            token = token.strip().rstrip(",")
            match = FILE_NAME.match(token)
            if match:
                yield doc, token, match.group(1), match.group(2)
                continue
            match = MODULE_NAME.match(token)
            if match and not token.startswith(("http", "docs/", "models/")) and match.group(2) not in EXTENSIONS:
                yield doc, token, match.group(1) + ".py", match.group(2)


def test_every_code_name_in_the_docs_exists():
    missing = []
    checked = 0
    for doc, token, relative, name in cited_names():
        path = _find(relative)
        checked += 1
        if path is None or (name and not _defines(path, name)):
            missing.append(f"{os.path.relpath(doc, ROOT)}: `{token}`")
    assert checked > 50, checked  # the pattern still finds the docs' citations
    assert not missing, "\n".join(missing)


def test_every_file_the_scripts_cite_exists():
    for script in glob.glob(os.path.join(ROOT, "scripts", "*.sh")) + [os.path.join(ROOT, "Makefile")]:
        with open(script) as f:
            for cited in re.findall(r"(?<![\w/.])(docs/[\w.-]+\.md)", f.read()):  # the project's own docs
                assert os.path.isfile(os.path.join(ROOT, cited)), (script, cited)
