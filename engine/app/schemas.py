"""The server's request bodies (pydantic models): strict JSON types, bounded counts, valid Unicode, JSON metadata;
the search settings derived from :class:`gingham.common.config.SearchConfig`, never restated here."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

from gingham.common.config import search_settings
from gingham.common.errors import require

require("pydantic", "server")
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat,  # noqa: E402
                      StrictInt, StrictStr, create_model)

_MAX_INT = 2**31 - 1  # bounds the numeric settings, so a huge JSON integer is a 422, not an overflow (500)


def _check_json_value(value: Any, where: str) -> None:
    """Metadata and filter values are stored and compared as JSON: no lone surrogates, no NaN or infinity."""
    if isinstance(value, str):
        _check_text(value, f"the value at {where}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the value at {where} is {value}, which JSON cannot carry; use a finite number or null")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"the key {key!r}" + (f" at {where}" if where else ""))
            _check_json_value(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_value(item, f"{where}[{i}]")


def _json_object(value: dict) -> dict:
    _check_json_value(value, "")
    return value


def _check_text(value: str, where: str = "the text") -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} contains a lone UTF-16 surrogate ({value[exc.start]!r} at position "
                         f"{exc.start}), which is not valid Unicode; send well-formed UTF-8 text") from None
    return value


def _check_id(value: Union[str, int]) -> Union[str, int]:
    return _check_text(value, "the id") if isinstance(value, str) else value


def printable(value: Any) -> Any:
    """A validation error's piece made safe to send as JSON (a lone surrogate would make the 422 itself a 500)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


Text = Annotated[StrictStr, AfterValidator(_check_text)]
DocId = Annotated[Union[StrictStr, StrictInt], AfterValidator(_check_id)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


class Strict(BaseModel):
    """Request bodies: unknown keys are errors, and no type coercion (``true`` is not an int, ``"1"`` no number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _setting(setting) -> tuple:
    """A :class:`SearchConfig` field as a request field: its type (strict, bounded as the config bounds it) and
    help; absent or null, the index's stored setting applies (``top_k``: 10, at most the index's documents)."""
    if setting.kind is int:
        kind = Annotated[StrictInt, Field(ge=setting.minimum, le=_MAX_INT)]
    else:
        kind = {float: StrictFloat, bool: StrictBool}[setting.kind]
    return Optional[kind], Field(None, description=setting.help)


#: The search settings of a request, one field per SearchConfig field, derived from it (never restated here).
SearchSettings = create_model("SearchSettings", __base__=Strict,
                              **{setting.name: _setting(setting) for setting in search_settings()})


class SearchRequest(SearchSettings):
    queries: Optional[list[Text]] = Field(None, description="Text queries (needs an index built from texts).")
    embeddings: Optional[list[list[list[StrictFloat]]]] = Field(None, description="Query token vectors.")
    subset: Optional[list[DocId]] = None
    filter: Optional[Union[JsonObject, Text]] = Field(  # an object first: its errors are reported first
        None, description="A SQL expression over metadata fields, with ? placeholders bound from 'params' "
        "(\"lang = ? AND year >= ?\"), or an object of metadata fields that must equal these values.")
    params: Optional[Union[list[Optional[Union[StrictStr, StrictInt, StrictFloat]]],
                           dict[str, Optional[Union[StrictStr, StrictInt, StrictFloat]]]]] = Field(
        None, description="Values for the placeholders of a SQL 'filter' (a list for ?, an object for :name).")
    hybrid: Optional[Literal["rrf", "relative"]] = Field(
        None, description="Fuse BM25 over the stored texts with MaxSim (text 'queries' only): reciprocal-rank or "
        "min-max normalised relative-score fusion.")
    alpha: Annotated[StrictFloat, Field(ge=0, le=1)] = Field(0.5, description="Weight of MaxSim against BM25.")
    include_text: StrictBool = Field(False, description="Give each hit its stored 'text' (null if none).")
    include_metadata: StrictBool = Field(False, description="Give each hit its 'metadata' (null if none).")


class ExplainRequest(Strict):
    id: DocId = Field(..., description="The document to explain.")
    query: Optional[Text] = Field(None, description="A text query (needs an index built from texts).")
    embedding: Optional[list[list[StrictFloat]]] = Field(None, description="One query's token vectors.")


class Document(Strict):
    id: DocId
    text: Optional[Text] = None
    embedding: Optional[list[list[StrictFloat]]] = None
    metadata: Optional[JsonObject] = None


class AddRequest(Strict):
    documents: list[Document] = Field(..., min_length=1)
    upsert: StrictBool = False


class DeleteRequest(Strict):
    ids: Optional[list[DocId]] = Field(None, min_length=1, description="Delete these documents...")
    missing_ok: StrictBool = False
    filter: Optional[Text] = Field(None, description="... or every document whose metadata satisfies this SQL "
                                   "expression (as /search's 'filter'), with 'params'.")
    params: Optional[Union[list[Optional[Union[StrictStr, StrictInt, StrictFloat]]],
                           dict[str, Optional[Union[StrictStr, StrictInt, StrictFloat]]]]] = None


class GetRequest(Strict):
    ids: list[DocId] = Field(..., min_length=1)
    include_text: StrictBool = True
    include_metadata: StrictBool = True


class DocumentUpdate(Strict):
    id: DocId
    metadata: Optional[JsonObject] = Field(None, description="Merged into (or, with mode 'replace', replacing) "
                                           "the stored metadata.")
    text: Optional[Text] = Field(None, description="The new stored text (BM25, results); not re-embedded.")


class UpdateRequest(Strict):
    documents: list[DocumentUpdate] = Field(..., min_length=1)
    mode: Literal["merge", "replace"] = "merge"
