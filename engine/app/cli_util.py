"""Helpers shared by the ``gingham`` CLI's command modules."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Callable, Optional

import typer

from gingham.common.config import SearchConfig, search_settings
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


def with_search_settings(command: Callable) -> Callable:
    """``command`` with one option per :class:`SearchConfig` field, derived from the config (name, type, help), in
    place of its ``settings`` parameter; ``command`` gets ``settings``: the fields given on the command line, checked
    by the config first (a bad value is one line, exit 2, before the command's work)."""
    names = [s.name for s in search_settings()]
    derived = [inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[s.kind],
                                 default=typer.Option(None, help=s.help, show_default=False))
               for s in search_settings()]
    params = []
    for param in inspect.signature(command, eval_str=True).parameters.values():
        params += derived if param.name == "settings" else [param.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {name: value for name in names if (value := kwargs.pop(name)) is not None}
        try:
            SearchConfig.from_dict(given)
        except ValueError as exc:
            fail(exc)
        return command(**kwargs, settings=given)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
