#!/usr/bin/env bash
# Create or reuse .venv with the pinned stack. Idempotent: re-runs only when the pins change.
# Order matters (see shared/docs/dependencies.md beside the repository): CPU torch first, then everything else constrained to it,
# then monailabel without its dependencies (it would pull CUDA torch, sam2 and pydicom 3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv
STAMP=$VENV/.cmrassist-stamp
want=$(cat pyproject.toml requirements/lock.txt requirements/constraints.txt scripts/setup_venv.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "[setup] preparing $VENV with $($PY --version) (first run takes a few minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install "torch==2.13.0"
$PIP install -c requirements/constraints.txt -r requirements/lock.txt
$PIP install --no-deps "monailabel==0.8.5"
$PIP install --no-deps -e .
# The Slicer-side tests (Testing/, marker `slicer`) run the module's scene layer on Slicer's own libraries: Kitware's
# slicer-core wheel (MRML, logics and loadable modules without Qt; its only pin is vtk), and the terminology files
# (DICOM master lists) that Kitware ships in trame-slicer. --no-deps: vtk's matplotlib and trame's web stack are not
# needed for a scene, and nothing else here imports vtk. The module detects Slicer by `import qt`, not `import slicer`.
$PIP install --no-deps "vtk==9.6.2" "slicer-core==5.13.31053.0" "trame-slicer==2.0.0"
# Development only: the Slicer module's library (panels, REST client) importable by the tests and benchmarks;
# the server package itself reaches the extension through CMRAssistCore only.
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$(pwd)/CMRAssist" > "$SITE/cmrassist-extension-dev.pth"
echo "$want" > "$STAMP"
echo "[setup] $VENV ready"
