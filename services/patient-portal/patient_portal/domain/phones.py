"""Phone numbers as the portal keys them: a mainland mobile number, digits only."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalize(phone: str | None) -> str | None:
    """"+86 138-0013-8000" -> "13800138000"; None for anything that is not one mobile number."""
    if not phone:
        return None
    digits = re.sub(r"[\s\-()]", "", phone)
    digits = digits.removeprefix("+86").removeprefix("0086")
    return digits if _MOBILE.fullmatch(digits) else None

