"""``check-config`` in one pass: field errors, then the cross-field and profile rules, then the model files."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.config import ConfigError, KioskConfig, _expand_env, format_error, load_config, read_toml

log = logging.getLogger(__name__)
MAX_ROUNDS = 5  # each round sets the keys the last one refused aside; nesting is at most this deep


def _set_aside(data: dict[str, Any], loc: tuple[Any, ...], missing: bool) -> bool:
    """Remove the value at ``loc`` (a missing one is filled with a placeholder); False when there is none."""
    node: Any = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if missing and isinstance(node, dict):
        node[last] = {} if last == "identity" else "x"  # identity's ids are the only required strings
        return True
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def config_problems(path: Path) -> tuple[list[str], KioskConfig | None]:
    """Every problem of a config file, and a config for the model check (bad keys at their defaults) when one exists."""
    try:
        return [], load_config(path)
    except ConfigError as exc:
        errors = list(exc.errors)
    try:
        raw = read_toml(path)
    except ConfigError:
        return errors, None  # unreadable: nothing more to find
    data = _expand_env(copy.deepcopy(raw), "", [])  # missing variables are already among the errors
    base = path.resolve().parent
    aside: set[tuple[Any, ...]] = set()  # keys removed or filled with a placeholder: not the file's own errors
    for _ in range(MAX_ROUNDS):
        try:
            return errors, KioskConfig.model_validate({**data, "base_dir": base})
        except ValidationError as exc:
            paths = [".".join(map(str, a)) for a in aside]
            for err in exc.errors():
                loc = tuple(err["loc"])
                if any(loc[:len(a)] == a for a in aside):
                    continue  # "Field required" or a placeholder's error where a bad value was set aside
                for line in format_error(err):  # whole-config rules name their key path first
                    key = line.split(":", 1)[0]
                    if any(key == p or key.startswith(p + ".") for p in paths):
                        continue  # a rule that misses a section set aside above
                    if not line.startswith("base_dir") and line not in errors:
                        errors.append(line)
            locs = [(tuple(e["loc"]), e["type"] == "missing") for e in exc.errors() if e["loc"]]
            moved = [_set_aside(data, loc, missing) for loc, missing in locs]
            aside.update(loc for (loc, _), ok in zip(locs, moved, strict=True) if ok)
            if not any(moved):  # only whole-config rules (the privacy profile) are left
                if data.get("privacy") == {"profile": "custom"}:
                    return errors, None
                data["privacy"] = {"profile": "custom"}  # reported above; the model files can still be checked
    return errors, None
