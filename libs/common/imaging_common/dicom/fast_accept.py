"""Association set-up without deep-copying every supported presentation context.

pynetdicom 3.0 gives each new association its own copy of the server's contexts with `copy.deepcopy`,
which re-creates and re-validates every abstract and transfer syntax UID: with the print SCP's 30-odd
contexts that is ~5 ms of CPU per association, more than DCMTK takes to accept one. A context's only
mutable part is its list of transfer syntaxes (the UIDs are immutable str subclasses), so a copy of its
attributes with its own list is as independent as the deep copy and costs microseconds.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.presentation import PresentationContext


def copy_contexts(contexts: list[PresentationContext]) -> list[PresentationContext]:
    """Copies negotiation may change without touching the originals."""
    out = []
    for cx in contexts:
        new = object.__new__(PresentationContext)
        new.__dict__.update(cx.__dict__)
        new._transfer_syntax = list(cx._transfer_syntax)
        out.append(new)
    return out


class _CheapCopies(list):  # type: ignore[type-arg]
    """The server's contexts: `deepcopy` of this list (what each new association takes) copies as above."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        return copy_contexts(list(self))


def use_fast_accept(server: Any) -> None:
    """Make a running pynetdicom AssociationServer set up its associations as above."""
    server.contexts = _CheapCopies(server.contexts)
