"""Slice-position ranking endpoints on a real MONAI Label server (loopback), several annotators at once."""

import base64
import json
import threading
from urllib import error, request

import pytest


def call(url, method, path, body=None):
    req = request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def ranking_server(phantom_studies, tmp_path_factory):
    import shutil

    from cmrassist_server.launcher import RunningServer

    studies = str(tmp_path_factory.mktemp("ranking") / "studies")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    srv = RunningServer(
        studies, str(tmp_path_factory.mktemp("ranking_model")), str(tmp_path_factory.mktemp("rl") / "s.log")
    )
    yield srv
    srv.stop()


def test_batches_come_with_thumbnails_and_bad_submissions_get_clear_4xx(ranking_server):
    url = ranking_server.url
    status, progress = call(url, "GET", "/ranking/progress")
    assert status == 200 and progress["items"] > 8 and progress["open_batches"] == 0
    status, batch = call(url, "POST", "/ranking/batch", {"annotator": "Dr A", "expertise": "expert"})
    assert status == 200 and len(batch["items"]) == 8
    png = base64.b64decode(batch["items"][0]["thumbnail_png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    ids = [it["id"] for it in batch["items"]]
    for body, code in (
        ({"batch": batch["batch"], "annotator": "Dr A", "order": ids[:7]}, 422),
        ({"batch": batch["batch"], "annotator": "Dr A", "order": ids[:7] + ids[:1]}, 422),
        ({"batch": batch["batch"], "annotator": "Dr A", "order": ids[:7] + [10**9]}, 422),
        ({"batch": batch["batch"], "annotator": "Dr B", "order": ids}, 409),
        ({"batch": "nope", "annotator": "Dr A", "order": ids}, 404),
    ):
        status, answer = call(url, "POST", "/ranking/submit", body)
        assert status == code and answer["detail"], body
    assert call(url, "GET", "/ranking/progress")[1]["annotators"] == {}
    assert call(url, "POST", "/ranking/submit", {"batch": batch["batch"], "annotator": "Dr A", "order": ids})[1][
        "counted"
    ]
    assert call(url, "POST", "/ranking/submit", {"batch": batch["batch"], "annotator": "Dr A", "order": ids})[1][
        "duplicate"
    ]
    assert call(url, "GET", "/ranking/progress")[1]["annotators"] == {"Dr A": {"batches": 1, "expertise": "expert"}}


def test_concurrent_annotators_never_share_an_open_batch_and_nothing_is_lost(ranking_server):
    url = ranking_server.url
    before = call(url, "GET", "/ranking/progress")[1]
    got, failures = [], []

    def annotate(name):
        for _ in range(2):
            status, batch = call(url, "POST", "/ranking/batch", {"annotator": name, "expertise": "non-expert"})
            if status != 200:
                failures.append((name, status, batch))
                return
            got.append(batch)
        for batch in got[:]:
            if batch["annotator"] == name:
                ids = sorted(it["id"] for it in batch["items"])
                status, answer = call(
                    url, "POST", "/ranking/submit", {"batch": batch["batch"], "annotator": name, "order": ids}
                )
                if status != 200 or not answer.get("counted"):
                    failures.append((name, status, answer))

    threads = [threading.Thread(target=annotate, args=(f"Annotator {k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    ids = [it["id"] for b in got for it in b["items"]]
    assert len(ids) == len(set(ids)) == 48
    after = call(url, "GET", "/ranking/progress")[1]
    assert (
        sum(a["batches"] for a in after["annotators"].values())
        == sum(a["batches"] for a in before["annotators"].values()) + 6
    )


def test_cut_points_derive_labels_and_the_store_survives_a_restart(ranking_server):
    url = ranking_server.url
    assert call(url, "GET", "/ranking/labels")[0] == 409
    assert call(url, "PUT", "/ranking/cut_points", {"basal_end": 1000, "apical_start": 2000})[0] == 422
    assert call(url, "PUT", "/ranking/cut_points", {"basal_end": 1520, "apical_start": 1480})[0] == 200
    status, labels = call(url, "GET", "/ranking/labels")
    assert status == 200 and {entry["position"] for entry in labels["labels"]} <= {"too_basal", "in_lv", "too_apical"}
    for entry in labels["labels"]:
        assert entry["position"] == (
            "too_basal" if entry["rating"] > 1520 else "too_apical" if entry["rating"] < 1480 else "in_lv"
        )
    ordered = call(url, "GET", "/ranking/ordered")[1]
    before = call(url, "GET", "/ranking/progress")[1]
    ranking_server.restart()
    assert call(ranking_server.url, "GET", "/ranking/ordered")[1] == ordered
    assert call(ranking_server.url, "GET", "/ranking/progress")[1]["annotators"] == before["annotators"]
