"""Start and stop a real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on a free loopback port with its own
storage folder; tests and benchmarks use it as the PACS (``scripts/setup_system.sh`` installs it)."""

import json
import os
import shutil
import subprocess
import time
from typing import Iterable, List

import requests

from cmrassist_server.launcher import free_port

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and os.path.isfile(DICOMWEB_PLUGIN)


class RunningOrthanc:
    """An Orthanc process with the DICOMweb plugin (``url``: REST root; ``dicomweb``: the DICOMweb root).

    Args:
        folder: its storage, index, configuration and log (created).
    """

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = self.url + "/dicom-web"
        config = {
            "Name": "cmrassist-test",
            "StorageDirectory": os.path.join(folder, "storage"),
            "IndexDirectory": os.path.join(folder, "storage"),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "SeriesMetadata": "Full"},
        }
        path = os.path.join(folder, "orthanc.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(folder, "orthanc.log"), "w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            ["Orthanc", path], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait(30.0)

    def _wait(self, timeout: float) -> None:
        start = time.time()
        while time.time() - start < timeout:
            if self.proc.poll() is not None:
                self.stop()
                with open(os.path.join(self.folder, "orthanc.log")) as f:
                    raise RuntimeError(f"Orthanc exited at start:\n{f.read()[-2000:]}")
            try:
                if requests.get(self.dicomweb + "/studies", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout:g} s")

    def upload(self, paths: Iterable[str]) -> List[str]:
        """Store files through the REST API (``POST /instances``); returns Orthanc's instance ids."""
        ids = []
        with requests.Session() as session:
            for path in paths:
                with open(path, "rb") as f:
                    answer = session.post(self.url + "/instances", data=f.read(), timeout=60)
                answer.raise_for_status()
                ids.append(answer.json()["ID"])
        return ids

    def series(self, modality: str = "") -> List[dict]:
        """Main tags of every series (optionally of one modality) in the store."""
        found = []
        for series_id in requests.get(self.url + "/series", timeout=30).json():
            series = requests.get(f"{self.url}/series/{series_id}", timeout=30).json()
            if not modality or series["MainDicomTags"].get("Modality") == modality:
                found.append(series)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.log.close()
