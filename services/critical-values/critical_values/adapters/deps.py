"""Route dependencies in domain words: who is calling, with which role, and the service context."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from fastapi import Depends, Request
from imaging_common.auth import Principal, require_roles
from imaging_common.service import Ctx as ServiceCtx  # the library's one context dependency
from imaging_common.service import ServiceContext

from critical_values.settings import Settings

# Radiologists find and raise critical values (7.1.3 (3)); the AI platform posts with a
# radiologist service account, its findings still wait for a person's confirmation.
Raiser = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist"))]
Confirmer = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist"))]
Senior = Annotated[Principal, Depends(require_roles("senior-radiologist"))]
# Clinicians (and clinician systems with a clinician service account) acknowledge.
Clinician = Annotated[Principal, Depends(require_roles("clinician"))]
# Who may see critical values of patients: imaging doctors, clinicians, nurses, admins.
Viewer = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "clinician", "nurse",
                                                    "admin"))]
# Imaging-side staff who phone and record (fallback, 7.1.3 (4)).
Caller = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "nurse", "admin"))]
# Quality control (8.7): the QC group and admins.
QualityControl = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
# The service context, its settings typed as critical values' own: ctx.settings.<field> is checked.
Ctx: TypeAlias = ServiceCtx[Settings]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


ClientIp = Annotated[str | None, Depends(client_ip)]


def wake(ctx: ServiceContext) -> None:
    """Something was queued: let the engine look now rather than at its next poll."""
    engine: Any = ctx.extras.get("engine")
    if engine is not None:
        engine.wake()
