"""Route dependencies: the service context (the library's one dependency, 503 until the service has started)."""

from __future__ import annotations

from typing import TypeAlias

from fastapi import Request
from imaging_common import service
from imaging_common.service import Ctx as ServiceCtx
from imaging_common.service import ServiceContext

from print_scp.settings import Settings

# The service context, its settings typed as the print SCP's own: ctx.settings.<field> is checked.
Ctx: TypeAlias = ServiceCtx[Settings]


def request_context(request: Request) -> ServiceContext[Settings]:
    """The context (503 until the service has started), for code that has the request rather than a `Ctx`."""
    return service.request_context(request)
