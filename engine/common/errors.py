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


class DocumentNotFoundError(GinghamError, KeyError):
    """Documents asked for by id are not in the index (never added, or deleted). ``ids`` lists them.

    A ``KeyError`` too, as a missing key of a mapping is, so code catching ``KeyError`` keeps working."""

    def __init__(self, ids, consequence: str = "") -> None:
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5]) + (f" and {len(self.ids) - 5} more" if len(self.ids) > 5
                                                          else "")
        what = "document id" if len(self.ids) == 1 else f"{len(self.ids)} document ids"
        super().__init__(f"{what} {shown} {'is' if len(self.ids) == 1 else 'are'} not in the index"
                         + (f"; {consequence}" if consequence else "")
                         + "; check the ids (index.ids() lists them), or pass missing_ok=True where offered")

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0])


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
