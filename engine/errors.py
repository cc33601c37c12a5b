"""Typed errors raised at Gingham's boundary. Each message names the bad value and the fix."""

from __future__ import annotations


class GinghamError(Exception):
    """Base class of every error Gingham raises on purpose."""


class IndexFormatError(GinghamError):
    """The directory is not a Gingham index, or was written by an incompatible format version."""


class IndexCorruptError(GinghamError):
    """A file of the index is missing, truncated or does not match its checksum."""


class IndexLockedError(GinghamError):
    """Another writer holds the index's write lock."""


class MissingDependencyError(ImportError, GinghamError):
    """An optional part of Gingham was used without its extra installed."""


def require(module: str, extra: str):
    """Import an optional dependency or raise an ImportError that says what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed; "
            f"install it with: pip install 'gingham[{extra}]'"
        ) from exc
