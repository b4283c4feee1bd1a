"""Who and from where, taken from an HTTP request and the authenticated Principal."""

from __future__ import annotations

from typing import Any


def client_ip(request: Any) -> str | None:
    """The peer address. X-Forwarded-For is not trusted: a client could write anything there."""
    client = getattr(request, "client", None)
    return client.host if client is not None else None


def request_context(request: Any, principal: Any = None) -> dict[str, Any]:
    """`actor` and `source_ip` for `audit.record(conn, **request_context(request, user), ...)`."""
    principal = principal or getattr(getattr(request, "state", None), "principal", None)
    actor = getattr(principal, "username", None) or "anonymous"
    return {"actor": actor, "source_ip": client_ip(request)}
