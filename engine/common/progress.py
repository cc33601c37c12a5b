"""Progress bars that follow logging: ``show_progress=None`` means on when the ``gingham`` logger is at INFO."""

from __future__ import annotations

import logging


def enabled(show_progress: bool | None) -> bool:
    if show_progress is None:
        return logging.getLogger("gingham").getEffectiveLevel() <= logging.INFO
    return bool(show_progress)


def bar(total: int | None, desc: str, show_progress: bool | None, unit: str = "it"):
    """A tqdm bar named after its phase (encode, kmeans, compress, index, search), or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(show_progress), unit_scale=True,
                leave=False, dynamic_ncols=True)
