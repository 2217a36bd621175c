"""User-facing errors: one clear sentence, a non-zero exit, never a traceback.

Raise :class:`EdgeReidError` (or a subclass) for anything a user can fix: bad input, a
missing file, a missing optional dependency. The command-line entry points catch it and
print only its message.
"""


class EdgeReidError(Exception):
    """An error whose message is a complete sentence meant for the user."""


class MissingDependencyError(EdgeReidError):
    """An optional dependency (TensorRT, a GPU, faiss, ...) is not available here."""


class InvalidInputError(EdgeReidError):
    """A file, folder or argument given by the user is missing, corrupt or malformed."""
