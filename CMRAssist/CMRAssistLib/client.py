"""REST client of the CMRAssist MONAI Label server: standard library only (runs inside Slicer, Python 3.9+).

Every failure surfaces as :class:`ServerError` with a message a user can read; no call blocks longer than
its timeout, and callers in a GUI run it off the GUI thread.
"""

import json
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional
from urllib import parse

from CMRAssistCore.progress import PROGRESS_PREFIX

from .train_status import TrainStatus, parse_train_status
from .transport import HttpTransport, ServerError, _filename, _multipart

EXPERTISE_LEVELS = ("expert", "non-expert")
__all__ = ["PROGRESS_PREFIX", "CMRAssistClient", "ServerError", "TrainStatus", "parse_train_status", "server_address"]


def server_address(url: str) -> str:
    """The server address as the client uses it: trimmed, no trailing slash, ``http://`` when no scheme is given."""
    url = (url or "").strip().rstrip("/")
    return url if url.startswith(("http://", "https://")) else "http://" + url


class CMRAssistClient(HttpTransport):
    """Client of one server.

    Args:
        server_url: e.g. ``http://127.0.0.1:8000``.
        token: API token (``cmra_...``) or an institution's bearer token; none for a server without sign-in.
        timeout: seconds per request (inference and uploads get ``long_timeout``).
        long_timeout: seconds for inference, uploads and downloads.
    """

    def __init__(self, server_url: str, *, token: str = "", timeout: float = 10.0, long_timeout: float = 300.0) -> None:
        self.server_url = server_address(server_url)
        self.token = (token or "").strip()
        self.timeout = timeout
        self.long_timeout = long_timeout

    def __repr__(self) -> str:  # never the token
        return f"CMRAssistClient({self.server_url!r}, signed={bool(self.token)})"

    # -- server state ------------------------------------------------------------------------------------
    def me(self) -> Dict[str, Any]:
        """``GET /auth/me``: the account the server answers this client as (``name``, ``role``, ``expertise``,
        ``source``, ``may``); a server that predates sign-in answers as one without it (``source`` ``open``)."""
        try:
            return self._json("GET", "/auth/me")
        except ServerError as e:
            if e.status == 404:
                return {"name": "", "role": "admin", "expertise": None, "source": "open", "auth": False}
            raise

    def info(self) -> Dict[str, Any]:
        """``GET /info/``: models (with their ``trained`` flag), trainers, strategies, datastore counts."""
        return self._json("GET", "/info/")

    def strategies(self) -> List[str]:
        return sorted(self.info().get("strategies", {}))

    # -- datastore --------------------------------------------------------------------------------------
    def next_sample(self, strategy: str = "random", params: Optional[Dict] = None) -> Dict[str, Any]:
        """``POST /activelearning/{strategy}``: the next study to annotate (``{"id": ..., ...}``)."""
        body = json.dumps(params or {}).encode()
        return self._json("POST", f"/activelearning/{parse.quote(strategy)}", body=body, ctype="application/json")

    def datastore(self) -> Dict[str, Any]:
        return self._json("GET", "/datastore/", query={"output": "all"})

    def image_info(self, image_id: str) -> Dict[str, Any]:
        return self._json("GET", "/datastore/image/info", query={"image": image_id})

    def download_image(self, image_id: str, folder: str, progress: Optional[Callable[[float], None]] = None) -> str:
        """Download a study image into ``folder``; returns the file path (extension kept).

        Args:
            image_id: the study.
            folder: where the file is written.
            progress: called with the fraction downloaded as the chunks arrive.
        """
        raw, headers = self._send(
            "GET", "/datastore/image", query={"image": image_id}, timeout=self.long_timeout, progress=progress
        )
        name = _filename(headers) or f"{image_id}.nii.gz"
        path = os.path.join(folder, os.path.basename(name))
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def upload_image(
        self,
        path: str,
        image_id: Optional[str] = None,
        info: Optional[Dict] = None,
        progress: Optional[Callable[[float], None]] = None,
    ) -> str:
        """``PUT /datastore/image``: add a study image; returns its id (``progress`` as in :meth:`download_image`)."""
        body, ctype = _multipart({"params": json.dumps(info or {})}, {"file": path})
        res = self._json(
            "PUT",
            "/datastore/image",
            query={"image": image_id},
            body=body,
            ctype=ctype,
            timeout=self.long_timeout,
            progress=progress,
        )
        return res["image"]

    def submit_label(
        self,
        image_id: str,
        label_path: str,
        *,
        annotator: str,
        expertise: str,
        tag: str = "final",
        extra: Optional[Dict] = None,
    ) -> Dict[str, Any]:
        """``PUT /datastore/label``: store a label with who made it, their expertise and when.

        Args:
            image_id: the study image.
            label_path: label map file on the image's grid (0 background, 1 RV, 2 MYO, 3 LV).
            annotator: the annotator's name (a server with sign-in records the signed-in account instead).
            expertise: ``expert`` or ``non-expert`` (likewise the account's on a server with sign-in).
            tag: label tag (``final`` by default).
            extra: more info to record (e.g. the frame).
        """
        if not annotator or not annotator.strip():
            raise ValueError("annotator name is empty")
        if expertise not in EXPERTISE_LEVELS:
            raise ValueError(f"expertise must be one of {EXPERTISE_LEVELS}, not {expertise!r}")
        info = {
            **(extra or {}),
            "annotator": annotator.strip(),
            "expertise": expertise,
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        body, ctype = _multipart({"params": json.dumps(info)}, {"label": label_path})
        return self._json(
            "PUT",
            "/datastore/label",
            query={"image": image_id, "tag": tag},
            body=body,
            ctype=ctype,
            timeout=self.long_timeout,
        )

    def label_info(self, image_id: str, tag: str = "final") -> Dict[str, Any]:
        return self._json("GET", "/datastore/label/info", query={"label": image_id, "tag": tag})

    def download_label(self, image_id: str, folder: str, tag: str = "final") -> str:
        raw, headers = self._send(
            "GET", "/datastore/label", query={"label": image_id, "tag": tag}, timeout=self.long_timeout
        )
        path = os.path.join(folder, os.path.basename(_filename(headers) or f"{image_id}_{tag}.nii.gz"))
        with open(path, "wb") as f:
            f.write(raw)
        return path

    # -- label versions (one per annotator per image) ------------------------------------------------------
    def download_report(self, image_id: str, folder: str, fmt: str = "html") -> str:
        """``GET /report/{image}``: the study report (``html`` or ``pdf``) written into ``folder``; returns its path.

        Through the client, so a server with sign-in gets the token (a browser link would not carry it).
        """
        raw, _ = self._send("GET", f"/report/{parse.quote(image_id)}", query={"format": fmt}, timeout=self.long_timeout)
        path = os.path.join(folder, "report_" + re.sub(r"[^A-Za-z0-9_-]", "_", image_id) + f".{fmt}")
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def label_versions(self, image_id: str) -> Dict[str, Any]:
        """``GET /versions/{image}``: every annotator's version (annotator, expertise, time) and the accepted one."""
        return self._json("GET", f"/versions/{parse.quote(image_id)}")

    def download_version(self, image_id: str, version: str, folder: str) -> str:
        raw, _ = self._send(
            "GET", f"/versions/{parse.quote(image_id)}/{parse.quote(version)}", timeout=self.long_timeout
        )
        path = os.path.join(folder, f"{image_id}_{version}.nii.gz")
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def accept_version(self, image_id: str, version: str, reviewer: str) -> Dict[str, Any]:
        """``POST /versions/{image}/accept``: make one version the ``final`` label."""
        body = json.dumps({"version": version, "reviewer": reviewer}).encode()
        return self._json("POST", f"/versions/{parse.quote(image_id)}/accept", body=body, ctype="application/json")

    def build_consensus(self, image_id: str, reviewer: str, versions: Optional[List[str]] = None) -> Dict[str, Any]:
        """``POST /versions/{image}/consensus``: STAPLE of the versions (all by default), made ``final``."""
        body = json.dumps({"reviewer": reviewer, "versions": versions}).encode()
        return self._json(
            "POST",
            f"/versions/{parse.quote(image_id)}/consensus",
            body=body,
            ctype="application/json",
            timeout=self.long_timeout,
        )

    # -- inference and training --------------------------------------------------------------------------
    def infer(self, image_id: str, folder: str, model: str = "segmentation", params: Optional[Dict] = None) -> str:
        """``POST /infer/{model}``: run the model on a stored study; returns the label file written to ``folder``."""
        body, ctype = _multipart({"params": json.dumps(params or {})}, {})
        raw, _ = self._send(
            "POST",
            f"/infer/{parse.quote(model)}",
            query={"image": image_id, "output": "image"},
            body=body,
            ctype=ctype,
            timeout=self.long_timeout,
        )
        path = os.path.join(folder, f"{image_id}_{model}.nii.gz")
        with open(path, "wb") as f:
            f.write(raw)
        return path

    def quality(self, image_id: str, label: str = "prediction", threshold: Optional[Any] = None) -> Dict[str, Any]:
        """``POST /infer/qc``: QC report of a study's label (a tag such as ``final``) or of the model's prediction.

        Args:
            image_id: the study (a 3D frame).
            label: ``prediction`` (the served model's segmentation) or a label tag.
            threshold: flag threshold, a number or ``{"lv_cavity": 0.8, ...}``; the server's default when omitted.
        """
        params: Dict[str, Any] = {"label": label}
        if threshold is not None:
            params["threshold"] = threshold
        return self._infer_json("qc", image_id, params)

    def slice_positions(self, image_id: str, frame: Optional[int] = None) -> Dict[str, Any]:
        """``POST /infer/slice_position``: per slice too basal / in the LV / too apical, and a continuous position.

        Args:
            image_id: the study (a 3D frame, or a 4D cine with ``frame``).
            frame: 1-based frame of a cine.
        """
        return self._infer_json("slice_position", image_id, {} if frame is None else {"frame": int(frame)})

    def _infer_json(self, model: str, image_id: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """``POST /infer/{model}`` of a task that answers JSON (a report, not an image)."""
        body, ctype = _multipart({"params": json.dumps(params)}, {})
        query = {"image": image_id, "output": "json"}
        return self._json("POST", f"/infer/{model}", query=query, body=body, ctype=ctype, timeout=self.long_timeout)

    def propagate(self, cine_id: str, folder: str, *, source: Optional[str] = None, store: bool = False) -> str:
        """``POST /infer/propagate``: a labelled frame carried to every frame of a stored cine; the 4D label file.

        Args:
            cine_id: the cine study.
            folder: where the label file is written.
            source: the frame study whose ``final`` label is propagated (the server finds one when omitted).
            store: also keep the result on the server as the cine's ``propagated`` label.
        """
        params: Dict[str, Any] = {"store": bool(store)}
        if source:
            params["source"] = source
        return self.infer(cine_id, folder, "propagate", params)

    def run_scoring(self, method: str = "qc", params: Optional[Dict] = None) -> Dict[str, Any]:
        """``POST /scoring/{method}``: score the datastore in the background (reviewers; 409 while one runs)."""
        return self._json(
            "POST", f"/scoring/{parse.quote(method)}", body=json.dumps(params or {}).encode(), ctype="application/json"
        )

    def scoring_status(self) -> Dict[str, Any]:
        """``GET /scoring/``: the scoring task's state and what each method's last finished run did."""
        return self._json("GET", "/scoring/")

    # -- slice-position ranking ---------------------------------------------------------------------------
    def ranking_batch(self, annotator: str, expertise: str) -> Dict[str, Any]:
        """``POST /ranking/batch``: 8 slices (with base64 PNG thumbnails) to order from most basal to most apical."""
        return self._json(
            "POST",
            "/ranking/batch",
            body=json.dumps({"annotator": annotator, "expertise": expertise}).encode(),
            ctype="application/json",
            timeout=self.long_timeout,
        )

    def ranking_submit(
        self, batch: str, annotator: str, order: List[int], seconds: Optional[float] = None
    ) -> Dict[str, Any]:
        """``POST /ranking/submit``: the batch's item ids from most basal to most apical."""
        body = {"batch": batch, "annotator": annotator, "order": [int(i) for i in order], "seconds": seconds}
        return self._json("POST", "/ranking/submit", body=json.dumps(body).encode(), ctype="application/json")

    def ranking_progress(self) -> Dict[str, Any]:
        return self._json("GET", "/ranking/progress")

    def ranking_ordered(self) -> Dict[str, Any]:
        return self._json("GET", "/ranking/ordered", timeout=self.long_timeout)

    def ranking_set_cut_points(self, basal_end: float, apical_start: float) -> Dict[str, Any]:
        body = json.dumps({"basal_end": basal_end, "apical_start": apical_start}).encode()
        return self._json("PUT", "/ranking/cut_points", body=body, ctype="application/json")

    def ranking_thumbnail(self, item_id: int) -> bytes:
        """PNG bytes of one ranked slice."""
        raw, _ = self._send("GET", "/ranking/thumbnail", query={"item": int(item_id)}, timeout=self.long_timeout)
        return raw

    def train_start(self, model: str = "segmentation", **params) -> Dict[str, Any]:
        """``POST /train/{model}`` with request params (``max_epochs``, ``max_minutes``, ``val_split``, ``device``)."""
        return self._json(
            "POST", f"/train/{parse.quote(model)}", body=json.dumps(params).encode(), ctype="application/json"
        )

    def model_versions(self, model: str = "segmentation") -> List[Dict[str, Any]]:
        """``GET /model_versions/{model}``: every published version (oldest first) with its record; ``current`` marks
        the one served now."""
        return self._json("GET", f"/model_versions/{parse.quote(model)}")["versions"]

    def make_model_current(self, model: str, version: str) -> Dict[str, Any]:
        """``PUT /model_versions/{model}/current``: serve an earlier version again."""
        return self._json(
            "PUT",
            f"/model_versions/{parse.quote(model)}/current",
            body=json.dumps({"version": version}).encode(),
            ctype="application/json",
        )

    # -- cohort runs -------------------------------------------------------------------------------------------
    def cohort_start(self, **options: Any) -> Dict[str, Any]:
        """``POST /batch/analyse`` (admin): segment, check and measure every study of the server in a child process
        (options ``frames`` all/ed-es, ``address`` of a Ray cluster, ``workers``, ``gpus_per_worker``, ...)."""
        return self._json("POST", "/batch/analyse", body=json.dumps(options).encode(), ctype="application/json")

    def cohort_status(self) -> Dict[str, Any]:
        """``GET /batch/analyse``: ``state`` (none, running, done, failed, stopped), progress counters, results."""
        return self._json("GET", "/batch/analyse")

    def cohort_stop(self) -> Dict[str, Any]:
        """``DELETE /batch/analyse``: stop the cohort run (what it finished stays done)."""
        return self._json("DELETE", "/batch/analyse")

    def train_stop(self) -> Dict[str, Any]:
        return self._json("DELETE", "/train/")

    def train_status(self) -> TrainStatus:
        try:
            task = self._json("GET", "/train/")
        except ServerError as e:
            if e.status == 404:
                return parse_train_status(None)
            raise
        return parse_train_status(task)
