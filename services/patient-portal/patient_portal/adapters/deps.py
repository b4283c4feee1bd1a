"""Route dependencies: the service context, and the signed-in patient (never a staff member).

Patient routes take `Patient`: a patient session token in `Authorization: Bearer`, checked by
`PatientSessions` (401 otherwise, a staff token included). Every answer of the patient API says
`Cache-Control: no-store`: nothing of it is kept on the phone.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from imaging_common import audit
from imaging_common.service import Ctx as ServiceCtx

from patient_portal.adapters.patient_auth import PatientAuthError, PatientSession, PatientSessions
from patient_portal.settings import Settings

Ctx: TypeAlias = ServiceCtx[Settings]
_bearer = HTTPBearer(auto_error=False, scheme_name="PatientSession",
                     description="Patient session token from POST /api/patient/auth/session")


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # also on a Response a route builds itself


def no_store(response: Response) -> None:
    response.headers.update(NO_STORE)


def sessions(ctx: Ctx) -> PatientSessions:
    return PatientSessions(ctx.redis, ctx.settings)


async def patient(request: Request, store: Annotated[PatientSessions, Depends(sessions)],
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> PatientSession:
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "a patient session is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        session = await store.verify(credentials.credentials)
    except PatientAuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    request.state.patient = session
    return session


def client_ip(request: Request) -> str | None:
    return audit.client_ip(request)


Patient = Annotated[PatientSession, Depends(patient)]
Sessions = Annotated[PatientSessions, Depends(sessions)]
ClientIp = Annotated[str | None, Depends(client_ip)]
