"""Errors the CLI turns into one-line messages (with a non-zero exit)."""


class GvstoreError(Exception):
    """A problem the user can fix: bad input, a missing file, a damaged store."""


class DamagedSegment(GvstoreError):
    """A segment whose bytes do not match its name, or that does not decode."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"damaged segment {path}: {reason}")
        self.path = path
        self.reason = reason
