#!/usr/bin/env bash
# System packages the tests need beside the venv: Orthanc with its DICOMweb plugin (Debian packages), which the
# PACS datastore tests start themselves on a free loopback port. Idempotent: does nothing once both are there.
set -euo pipefail
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
if command -v Orthanc >/dev/null 2>&1 && [ -f "$PLUGIN" ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "[setup] installing orthanc and orthanc-dicomweb (apt)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb >/dev/null
command -v Orthanc >/dev/null 2>&1 && [ -f "$PLUGIN" ] || { echo "[setup] orthanc install failed" >&2; exit 1; }
