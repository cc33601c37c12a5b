"""Helpers shared by the ``gingham`` CLI's command modules."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from gingham.common.config import SearchConfig, search_settings
from gingham.common.errors import GinghamError

#: Errors that mean the user asked for something wrong (a bad value, a missing or existing path, a typed Gingham
#: error that names the fix, a missing extra): each command reports them with :func:`fail`, never a traceback.
USER_ERRORS = (GinghamError, ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
               ImportError)

#: Parameters several commands take, written once.
IndexDir = Annotated[Path, typer.Argument(help="Index directory.")]
Where = Annotated[Optional[str], typer.Option(
    help="SQL expression over metadata fields, e.g. \"lang = ? AND year >= ?\", with one --param per ?.")]
Params = Annotated[Optional[list[str]], typer.Option(
    help="A value for a ? of --where: JSON (2020, true, null, \"2020\") or else a plain string.")]


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


def sql_filter(where: Optional[str], params: Optional[list[str]]) -> dict:
    """``--where`` and its ``--param`` values as ``where=`` and ``params=`` (empty without ``--where``)."""
    if params and where is None:
        raise ValueError("--param gives values for the ? of --where; add --where")
    if where is None:
        return {}
    return {"where": where, "params": [_param(p) for p in params] if params else None}


def _param(text: str):
    """A --param value: JSON when it parses as a JSON scalar, else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (str, int, float)) else text


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
