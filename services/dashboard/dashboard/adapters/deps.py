"""Route dependencies in domain words: who is calling, with which role, and the service context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeAlias

from fastapi import Depends, HTTPException, Request
from imaging_common.auth import Principal, require_roles
from imaging_common.service import Ctx as ServiceCtx  # the library's one context dependency

from dashboard.settings import Settings

# The department's figures and their drill-down to exams (names): the department head (a senior
# radiologist, quality control) and admins.
Head = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin"))]
# The modality status board holds no patient data: also IT operations and the technologists at the devices.
DeviceViewer = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin", "it-ops", "technologist"))]
# Registering devices and recording their maintenance.
DeviceKeeper = Annotated[Principal, Depends(require_roles("admin", "it-ops"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
# Quality control (8.1-8.3): readers grade images and requests (technologists, radiologists) and score reports
# (radiologists only, checked per kind); the QC lead sets the sampling plan and reads the statistics.
QcReader = Annotated[Principal, Depends(require_roles("technologist", "radiologist", "senior-radiologist"))]
QcLead = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin"))]
REPORT_READERS = ("radiologist", "senior-radiologist")
# The service context, its settings typed as the dashboard's own: ctx.settings.<field> is checked.
Ctx: TypeAlias = ServiceCtx[Settings]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


ClientIp = Annotated[str | None, Depends(client_ip)]


def window(start: datetime | None, end: datetime | None, days: int) -> tuple[datetime, datetime]:
    """The asked period; by default the `days` before `end` (now by default)."""
    end = end or datetime.now(UTC)
    try:
        return start or end - timedelta(days=days), end
    except OverflowError:  # an end within `days` of 0001-01-01: no default start exists
        raise HTTPException(422, "end is too early: give a start as well") from None
