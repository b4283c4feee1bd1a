"""Person names (VR PN): three component groups, each of five `^`-separated components.

    "ZHANG^SAN=张^三=zhang^san" -> alphabetic "ZHANG^SAN", ideographic "张^三", phonetic "zhang^san"

Chinese sites put the Han characters in either the alphabetic group (most modalities) or the
ideographic group (the standard's way), so matching compares a query group against each stored
group. `match_form` is what we store and compare: trailing empty components and padding removed,
Latin letters upper-cased (PN matching is case-insensitive for Latin; Han characters have no case).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonNameGroups:
    alphabetic: str = ""
    ideographic: str = ""
    phonetic: str = ""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.alphabetic, self.ideographic, self.phonetic))

    @property
    def value(self) -> str:
        """The DICOM PN string, trailing empty groups dropped."""
        return "=".join((self.alphabetic, self.ideographic, self.phonetic)).rstrip("=")

    @property
    def nonempty(self) -> list[str]:
        return [g for g in self if g]

    def match_forms(self) -> PersonNameGroups:
        return PersonNameGroups(*(match_form(g) for g in self))


def _trim_group(group: str) -> str:
    components = [c.strip() for c in group.split("^")]
    while components and not components[-1]:
        components.pop()
    return "^".join(components)


def split_person_name(value: str | None) -> PersonNameGroups:
    """The three component groups of a PN value (missing groups are empty)."""
    if not value:
        return PersonNameGroups()
    parts = str(value).strip().strip("\x00").split("=")
    parts = (parts + ["", "", ""])[:3]
    return PersonNameGroups(*(_trim_group(p) for p in parts))


def match_form(group: str) -> str:
    """One component group as stored for matching: trimmed, Latin letters upper-case."""
    return _trim_group(group).upper()


def person_name(alphabetic: str = "", ideographic: str = "", phonetic: str = "") -> str:
    """Build a PN value from its groups, e.g. person_name("ZHANG^SAN", "张^三") -> "ZHANG^SAN=张^三"."""
    return PersonNameGroups(_trim_group(alphabetic), _trim_group(ideographic), _trim_group(phonetic)).value
