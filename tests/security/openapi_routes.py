"""Routes as the services publish them (OpenAPI) and the roles each route declares (require_roles).

Everything here is read from the running code, never listed by hand, so a route added tomorrow
is swept by the security checks the day it appears.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imaging_common.auth.roles import ROLES

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str  # template, e.g. /api/print/films/{film_id}
    path_params: dict[str, dict[str, Any]]  # name -> schema
    query_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_types: tuple[str, ...] = ()  # request media types
    secured: bool = False  # declares a security requirement

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, **values: str) -> str:
        """The path with the given values in its parameters, plausible ones in the others."""
        return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1))
                      or plausible(m.group(1), self.path_params.get(m.group(1), {})), self.path)


def operations_of(doc: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [*shared, *op.get("parameters", [])]
            found.append(Operation(
                method=method.upper(), path=path,
                path_params={p["name"]: p.get("schema", {}) for p in params if p["in"] == "path"},
                query_params={p["name"]: p.get("schema", {}) for p in params if p["in"] == "query"},
                body_types=tuple(op.get("requestBody", {}).get("content", {})),
                secured=bool(op.get("security")),
            ))
    return found


def plausible(name: str, schema: dict[str, Any]) -> str:
    """A value shaped like the real thing, so a refusal is about the caller, not the URL."""
    kind = schema.get("type") or next((s.get("type") for s in schema.get("anyOf", []) if s.get("type")), None)
    if kind == "integer":
        return "1"
    if schema.get("format") == "uuid" or name.endswith("_id") or name == "key":
        return str(uuid.uuid4())
    if "accession" in name:
        return "SEC0000001"
    if schema.get("enum"):
        return str(schema["enum"][0])
    return "sec-probe"


# --- roles declared with require_roles(...) --------------------------------------------------


def _admitted(call: Any) -> frozenset[str] | None:
    """The roles a `require_roles(...)` dependency admits (read from its closure), else None."""
    if not getattr(call, "__qualname__", "").startswith("require_roles."):
        return None
    cells = dict(zip(call.__code__.co_freevars, (c.cell_contents for c in call.__closure__ or ()), strict=True))
    return frozenset(cells["admitted"])


def _roles_in(dependant: Any) -> list[frozenset[str]]:
    found = []
    stack = [dependant]
    while stack:
        d = stack.pop()
        roles = _admitted(d.call)
        if roles is not None:
            found.append(roles)
        stack.extend(d.dependencies)
    return found


def _routes(routes: list[Any], prefix: str = "", extra: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any, tuple]]:
    """(full path, route, router-level dependencies) of every API route, through included routers.

    FastAPI flattens included routers into APIRoutes in some versions and keeps them as
    `_IncludedRouter(original_router, include_context)` in others: both shapes are walked.
    """
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = route.include_context
            yield from _routes(inner.routes, prefix + context.prefix, extra + tuple(context.dependencies or ()))
        elif hasattr(route, "dependant") and hasattr(route, "methods"):
            yield prefix + route.path, route, extra + tuple(getattr(route, "dependencies", ()) or ())


def declared_roles(app: Any) -> dict[tuple[str, str], frozenset[str] | None]:
    """(METHOD, path) -> the roles a caller needs (the intersection of every guard), None when unguarded."""
    declared: dict[tuple[str, str], frozenset[str] | None] = {}
    for path, route, router_deps in _routes(app.router.routes):
        guards = _roles_in(route.dependant)
        for dep in router_deps:
            roles = _admitted(dep.dependency)
            if roles is not None:
                guards.append(roles)
        roles = frozenset(ROLES).intersection(*guards) if guards else None
        for method in route.methods:
            declared[(method, path)] = roles
    return declared
