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


#: errno -> (what happened, what to do) when the operating system refuses a write or a read
_OS_ADVICE = {
    "ENOSPC": ("Could not write {where}: the disk is full", "free some space or choose a folder on another disk"),
    "EDQUOT": ("Could not write {where}: the disk quota is exhausted", "free some space or choose another disk"),
    "EFBIG": ("Could not write {where}: the file is larger than allowed", "raise the file-size limit or free space"),
    "EROFS": ("Could not write {where}: the file system is read-only", "choose a writable folder"),
    "EACCES": ("Access to {where} was denied", "choose a folder this user can use, or change its permissions"),
    "EPERM": ("Access to {where} is not permitted", "choose a folder this user can use, or change its permissions"),
}


def os_error_sentence(exc: OSError) -> str:
    """One sentence for an operating-system error (disk full, read-only, permissions, a missing
    file): what failed, on which path, and what to do."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    where = str(exc.filename) if exc.filename else "a file"
    detail = exc.strerror or str(exc) or type(exc).__name__
    if name in _OS_ADVICE:
        what, advice = _OS_ADVICE[name]
        return f"{what.format(where=where)} ({detail}); {advice}."
    return f"The operating system refused an operation on {where}: {detail}."
