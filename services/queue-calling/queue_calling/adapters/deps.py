"""Route dependencies in domain words: who is calling, with which role, and the service context."""

from __future__ import annotations

from typing import Annotated, TypeAlias

from fastapi import Depends, Request
from imaging_common.auth import Principal, require_roles
from imaging_common.service import Ctx as ServiceCtx  # the library's one context dependency

from queue_calling.settings import Settings

# Check-in at the registration desk or a nurse's triage desk (kiosks use a clerk account).
CheckInStaff = Annotated[Principal, Depends(require_roles("clerk", "nurse", "admin"))]
# Calling terminals (smart-imaging standard 6.2.2 (3)): registration desk, nurses, technologists.
TerminalStaff = Annotated[Principal, Depends(require_roles("clerk", "nurse", "technologist", "admin"))]
# Central configuration of rooms, queues, rules and screens.
Admin = Annotated[Principal, Depends(require_roles("admin"))]
# The service context, its settings typed as queue calling's own: ctx.settings.<field> is checked.
Ctx: TypeAlias = ServiceCtx[Settings]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


ClientIp = Annotated[str | None, Depends(client_ip)]
