"""Names on public screens, masked by a configurable rule (smart-imaging standard 6.2.2 (5)).

Rule (screen.mask_rule, JSON): {"mode": "middle" | "keep_first" | "none", "char": "*"}
  middle      张三 -> 张*, 张三丰 -> 张*丰, 欧阳娜娜 -> 欧**娜; Latin words likewise (SMITH -> S***H)
  keep_first  张三丰 -> 张**
  none        shown as registered (only for screens in staff-only areas)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_RULE: dict[str, Any] = {"mode": "middle", "char": "*"}


def _mask_word(word: str, mode: str, char: str) -> str:
    if len(word) <= 1:
        return word
    if mode == "keep_first" or len(word) == 2:
        return word[0] + char * (len(word) - 1)
    return word[0] + char * (len(word) - 2) + word[-1]


def mask_name(name: str, rule: Mapping[str, Any] | None = None) -> str:
    """Hide the middle of a name; DICOM-style "SMITH^JOHN" is masked word by word."""
    rule = {**DEFAULT_RULE, **(rule or {})}
    mode, char = str(rule["mode"]), str(rule["char"])[:1] or "*"
    if mode == "none":
        return name.replace("^", " ").strip()
    words = [w for w in name.replace("^", " ").split(" ") if w]
    return " ".join(_mask_word(w, mode, char) for w in words)
