"""Typed errors: one class per status code of the server (base/status.h).

Every error a call raises is a QuiverError; its class names the code (NotFound,
InvalidArgument, ...), ``code`` is the code's name and ``message`` the server's message. A
transport failure (no server, a broken connection) is Unavailable; a missed deadline is
DeadlineExceeded.
"""


class QuiverError(Exception):
    """A failed call: ``code`` (e.g. "NOT_FOUND") and ``message``."""

    code = "UNKNOWN"
    number = 2

    def __init__(self, message=""):
        super().__init__(f"{self.code}: {message}")
        self.message = message


def _define(name, code, number):
    cls = type(name, (QuiverError,), {"code": code, "number": number,
                                      "__doc__": f"The server's {code} (status code {number})."})
    globals()[name] = cls
    return cls


_BY_NUMBER = {}
for _name, _code, _number in [
    ("Cancelled", "CANCELLED", 1),
    ("Unknown", "UNKNOWN", 2),
    ("InvalidArgument", "INVALID_ARGUMENT", 3),
    ("DeadlineExceeded", "DEADLINE_EXCEEDED", 4),
    ("NotFound", "NOT_FOUND", 5),
    ("AlreadyExists", "ALREADY_EXISTS", 6),
    ("PermissionDenied", "PERMISSION_DENIED", 7),
    ("ResourceExhausted", "RESOURCE_EXHAUSTED", 8),
    ("FailedPrecondition", "FAILED_PRECONDITION", 9),
    ("Aborted", "ABORTED", 10),
    ("OutOfRange", "OUT_OF_RANGE", 11),
    ("Unimplemented", "UNIMPLEMENTED", 12),
    ("Internal", "INTERNAL", 13),
    ("Unavailable", "UNAVAILABLE", 14),
    ("DataLoss", "DATA_LOSS", 15),
    ("Unauthenticated", "UNAUTHENTICATED", 16),
]:
    _BY_NUMBER[_number] = _define(_name, _code, _number)


def from_code(number, message):
    """The error for a status code number from the wire (an unknown one is Unknown)."""
    return _BY_NUMBER.get(number, _BY_NUMBER[2])(message)


__all__ = ["QuiverError", "from_code"] + [c.__name__ for c in _BY_NUMBER.values()]
