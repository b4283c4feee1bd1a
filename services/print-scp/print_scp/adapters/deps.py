"""Route dependencies: the service context (the library's one dependency, 503 until the service has started)."""

from __future__ import annotations

from imaging_common.service import Ctx as Ctx
from imaging_common.service import request_context as request_context
