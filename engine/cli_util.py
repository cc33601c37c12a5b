"""Helpers shared by the ``gingham`` CLI's command modules."""

from __future__ import annotations

import logging

import typer


def setup_logging(quiet: bool) -> None:
    """The CLI (not the library) chooses log levels: gingham at INFO (progress bars on) unless quiet."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gingham").setLevel(logging.WARNING if quiet else logging.INFO)


def fail(exc: Exception) -> None:
    """Print ``exc`` as a CLI error and exit with status 2."""
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
