"""The Review panel links to the server's study report of the study on screen (HTML and PDF), and the links work."""

import re

from file_scene import FileScene
from panel_helpers import wait_for

from CMRAssistLib.annotation import AnnotationSession, Study
from CMRAssistLib.review_panel import ReviewPanel
from CMRAssistLib.settings import UserSettings


def test_review_panel_links_to_the_study_report(app, runner, server, tmp_path):
    review = ReviewPanel(AnnotationSession(UserSettings(server.url), str(tmp_path)), runner, FileScene())
    assert review.report_label.text == ""
    review.study_segmented(Study(image_id="phantom011_cine", path="", info={}, n_frames=12))  # a cine: no QC job
    # Not a browser link (it would lack the API token of a server with sign-in): the worker fetches the file.
    assert not review.report_label.openExternalLinks
    links = re.findall(r'href="([^"]+)"', review.report_label.text)
    assert links == [
        f"{server.url}/report/phantom011_cine?format=html",
        f"{server.url}/report/phantom011_cine?format=pdf",
    ]
    opened = []
    review.open_file = opened.append  # the system's viewer, recorded
    review.report_label.linkActivated.emit(links[0].replace("phantom011_cine", "phantom011_ed"))
    wait_for(app, lambda: opened or "not available" in review.message_label.text, what="the report", timeout=180)
    assert opened and opened[0].endswith("report_phantom011_ed.html"), review.message_label.text
    with open(opened[0]) as f:
        assert "LV EF" in f.read()
    review.report_label.linkActivated.emit(f"{server.url}/report/nosuchstudy?format=pdf")
    wait_for(app, lambda: "not available" in review.message_label.text, what="the refusal", timeout=60)
    assert "404" in review.message_label.text or "nosuchstudy" in review.message_label.text
