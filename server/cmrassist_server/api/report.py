"""``GET /report/{image}?format=json|csv|pdf|html|png``: the study report of a segmented study (its cine or one of
its ED/ES frames): clinical measures against normal ranges, QC summary, pictures (``reporting/``)."""

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response

from cmrassist_server.api.routing import api_prefix, mount_first, role
from cmrassist_server.core.ids import check_id
from cmrassist_server.reporting.render import FORMATS, render
from cmrassist_server.reporting.report import build_report
from cmrassist_server.reporting.study import study_data


def _app():
    from monailabel.interfaces.utils.app import app_instance

    return app_instance()


def install_report_routes(app: FastAPI) -> None:
    """Add ``/report`` in front of MONAI Label's routes (the served app's datastore and batch QC checker answer it:
    a report is batch work, its QC looks through the fold ensemble while it serves)."""
    router = APIRouter(prefix=api_prefix() + "/report", tags=["Report"])

    @router.get("/{image}", summary="Clinical measures, QC summary and pictures of a segmented study")
    def report(image: str, format: str = Query("json", description=", ".join(FORMATS)), user=role("user")):
        check_id(image)
        instance = _app()
        data = study_data(instance.datastore(), image)
        content, media = render(data, build_report(data, instance.qc.batch_checker), format)
        disposition = "attachment" if format in ("csv", "pdf") else "inline"
        return Response(
            content,
            media_type=media,
            headers={"Content-Disposition": f'{disposition}; filename="{image}_report.{format}"'},
        )

    mount_first(app, router, "report")
