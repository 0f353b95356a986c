"""Close key names for a misspelt config key (did-you-mean), found by walking the pydantic models."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel

HIDDEN = frozenset({"base_dir"})  # set by the loader, never written in a file


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``, ``list[X]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def close_key(root: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The known key closest to the last part of ``loc`` (a misspelt key's path), or None when none is close."""
    if not loc:
        return None
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue  # a list index: the list's items have the same model
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return None
    names = [n for n in model.model_fields if n not in HIDDEN]
    match = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.7)
    return match[0] if match else None
