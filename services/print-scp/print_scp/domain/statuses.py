"""DIMSE status codes the print SCP answers with (PS3.7 Annex C, PS3.4 Annex H.4).

They belong to the domain: the print service's rules are the Print Management Service Class's
(PS3.4 Annex H, which WS/T 597-2018 prints to in N-CREATE / N-SET / N-ACTION), and that class states
each outcome as one of these statuses (an empty page is B603, an image larger than its box C603).
Mapping them to a domain vocabulary of our own and back in the adapter would only add a second
name for each. Kept as plain integers so the domain says *why* a request failed without importing
pynetdicom (docs/service-template.md); the DICOM adapter puts them on the wire with the comment.
"""

SUCCESS = 0x0000
# General DIMSE-N failures (PS3.7 C.4)
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
INVALID_ARGUMENT_VALUE = 0x0115
ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116  # a warning (PS3.7 C.4): the request was carried out; not used here
NO_SUCH_SOP_CLASS = 0x0118
CLASS_INSTANCE_CONFLICT = 0x0119
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
NO_SUCH_ACTION = 0x0123
UNRECOGNIZED_OPERATION = 0x0211
RESOURCE_LIMITATION = 0x0213
# Print management (PS3.4 H.4)
WARN_MEMORY_ALLOCATION_NOT_SUPPORTED = 0xB600
WARN_SESSION_PRINTING_NOT_SUPPORTED = 0xB601
# Empty page: a film box of the session (B602) or the film box printed (B603) holds no image at all
WARN_SESSION_EMPTY_PAGE = 0xB602
WARN_EMPTY_PAGE = 0xB603
WARN_IMAGE_DEMAGNIFIED = 0xB604
WARN_IMAGE_CROPPED = 0xB609  # Requested Decimate/Crop Behavior CROP
WARN_DENSITY_OUT_OF_RANGE = 0xB605
FAIL_SESSION_HAS_NO_FILM_BOX = 0xC600
FAIL_SESSION_PRINT_QUEUE_FULL = 0xC601  # Film Session N-ACTION
FAIL_PRINT_QUEUE_FULL = 0xC602  # Film Box N-ACTION
FAIL_IMAGE_LARGER_THAN_BOX = 0xC603
FAIL_IMAGE_POSITION_COLLISION = 0xC604
FAIL_INSUFFICIENT_MEMORY = 0xC605


ERROR_COMMENT_MAX = 64  # Error Comment (0000,0902) is one LO value


def _joined(a: str, b: str) -> bool:
    """Whether a cut between characters a and b would split a word, a number or a UID."""
    def part(c: str) -> bool:
        return c.isalnum() or c in "._-+"
    return part(a) and part(b)


def error_comment(text: str, limit: int = ERROR_COMMENT_MAX) -> str:
    """`text` as an Error Comment: at most `limit` characters, no backslash (the VM delimiter).

    A longer text is cut where a word ends and marked with "...", never inside a number or a UID:
    a half UID in a log or on the modality's screen names the wrong instance.
    """
    text = text.replace("\\", "/")
    if len(text) <= limit:
        return text
    end = limit - 3
    while end > 0 and _joined(text[end - 1], text[end]):
        end -= 1
    return text[:end].rstrip(" ,;:(/=") + "..."


class PrintFailure(Exception):
    """A request the printer refuses: carries the DIMSE status and a human-readable comment."""

    def __init__(self, status: int, comment: str, offending: list[int] | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = error_comment(comment)
        self.offending = offending or []  # the attributes concerned: the response's Attribute Identifier List
