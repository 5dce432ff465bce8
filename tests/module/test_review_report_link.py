"""The Review panel links to the server's study report of the study on screen (HTML and PDF), and the links work."""

import re

import requests
from file_scene import FileScene

from CMRAssistLib.annotation import AnnotationSession, Study
from CMRAssistLib.review_panel import ReviewPanel
from CMRAssistLib.settings import UserSettings


def test_review_panel_links_to_the_study_report(app, runner, server, tmp_path):
    review = ReviewPanel(AnnotationSession(UserSettings(server.url), str(tmp_path)), runner, FileScene())
    assert review.report_label.text == ""
    review.study_segmented(Study(image_id="phantom011_cine", path="", info={}, n_frames=12))  # a cine: no QC job
    assert review.report_label.openExternalLinks
    links = re.findall(r'href="([^"]+)"', review.report_label.text)
    assert links == [
        f"{server.url}/report/phantom011_cine?format=html",
        f"{server.url}/report/phantom011_cine?format=pdf",
    ]
    answer = requests.get(links[0].replace("phantom011_cine", "phantom011_ed"), timeout=120)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "LV EF" in answer.text
