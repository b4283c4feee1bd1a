"""Domain errors as problem documents, for every route of the scheduling routers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from fastapi import Request, Response
from fastapi.routing import APIRoute
from imaging_common.problems import problem

from scheduling.domain.booking import BookingRefused, NotFound, SlotTaken
from scheduling.domain.rules import InvalidRule
from scheduling.domain.states import InvalidTransition


def as_problem(exc: Exception) -> Response | None:
    if isinstance(exc, BookingRefused):
        return problem(422, "Booking refused", str(exc), violations=[v.as_dict() for v in exc.violations])
    if isinstance(exc, SlotTaken):
        return problem(409, "Slot taken", str(exc))
    if isinstance(exc, InvalidTransition):
        return problem(409, "Transition not allowed", str(exc), event=exc.action.value, status_now=exc.state)
    if isinstance(exc, NotFound):
        return problem(404, "Not Found", str(exc))
    if isinstance(exc, InvalidRule):
        return problem(422, "Invalid rule", str(exc), errors=exc.errors)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        # A room, exam type or ward the body names does not exist (or is still referenced, on delete).
        referencing = str(exc).startswith("insert or update")
        return problem(422 if referencing else 409, "Unknown reference" if referencing else "Still referenced",
                       exc.detail or str(exc))
    return None


class DomainRoute(APIRoute):
    """Routes whose domain errors become 4xx problem+json instead of 500s."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except (BookingRefused, SlotTaken, InvalidTransition, NotFound, InvalidRule,
                    asyncpg.ForeignKeyViolationError) as exc:
                response = as_problem(exc)
                assert response is not None
                return response

        return run
