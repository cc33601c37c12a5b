"""Helpers shared by the ``gingham`` CLI's command modules."""

from __future__ import annotations

import logging

import typer

from gingham.common.errors import GinghamError

#: Errors that mean the user asked for something wrong (a bad value, a missing or existing path, a typed Gingham
#: error that names the fix, a missing extra): each command reports them with :func:`fail`, never a traceback.
USER_ERRORS = (GinghamError, ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
               ImportError)


def setup_logging(quiet: bool) -> None:
    """The CLI (not the library) chooses log levels: gingham at INFO (progress bars on) unless quiet."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gingham").setLevel(logging.WARNING if quiet else logging.INFO)


def fail(exc: Exception) -> None:
    """Print ``exc`` as a CLI error and exit with status 2."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # str(KeyError) adds quotes
    message = " ".join(str(text).split())  # one line, whatever the message holds
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
