"""What changed between a stored sweep's definition and the config now, said by name.

A refused resume must tell the user what they changed (`parameter 'hiden' is now 'hidden'`,
`lr: high 0.1 -> 0.2`), not dump two fingerprints for them to compare by eye.
"""

from __future__ import annotations

import json
from typing import Any

from ..config.schema import KEYS
from ..hints import near_name

# fingerprint keys said in words; the rest are named as "'key' changed"
_PLAIN = {
    "algorithm": "algorithm",
    "seed": "seed",
    "metric": "metric",
    "direction": "direction",
    "points": "points",
}


def shown(value: Any) -> str:
    """A value as a user wrote it in YAML-ish form: 0.1, 'relu', [1, 2], none."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def same(before: Any, after: Any) -> bool:
    """Equal as stored, types included: Python takes `1`, `1.0` and `true` for one value, but a
    trial is passed `1`, `1.0` or `True`, and training code reading `int(y)` fails on two."""
    return json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)


def same_as(key: str, before: Any, after: Any) -> bool:
    """Is fingerprint entry `key` unchanged? The parameters, which reach trials as written, by
    `same`; the rest (a sampler's `prior_weight: 1` or `1.0`) by value."""
    return same(before, after) if key == "parameters" else before == after


def same_definition(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Do two fingerprints (`SweepConfig.fingerprint()`) define the same sweep?"""
    return all(same_as(key, stored.get(key), current.get(key)) for key in set(stored) | set(current))


def describe_drift(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One phrase per change between two fingerprints (`SweepConfig.fingerprint()`), in a stable order."""
    changes: list[str] = []
    for key in sorted(set(stored) | set(current), key=_order):
        before, after = stored.get(key), current.get(key)
        if same_as(key, before, after):
            continue
        if key == "parameters":
            changes.extend(_parameter_changes(before or {}, after or {}))
        elif key in _PLAIN:
            changes.append(f"{_PLAIN[key]} {shown(before)} -> {shown(after)}")
        elif before is None:
            changes.append(f"'{key}' added ({shown(after)})")
        elif after is None:
            changes.append(f"'{key}' removed (was {shown(before)})")
        else:
            changes.append(f"'{key}' {shown(before)} -> {shown(after)}")
    return changes


def _order(key: str) -> tuple[int, str]:
    first = ["parameters", "metric", "metrics", "direction", "algorithm", "seed"]
    return (first.index(key) if key in first else len(first), key)


def _parameter_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    before = _flatten(stored)
    after = _flatten(current)
    removed = [name for name in before if name not in after]
    added = [name for name in after if name not in before]
    changes: list[str] = []
    for old in list(removed):
        new = near_name(old, added)
        if new is not None:
            removed.remove(old)
            added.remove(new)
            changes.append(f"parameter '{old}' is now '{new}'")
            changes.extend(_definition_changes(new, before[old], after[new]))
    changes.extend(f"parameter '{name}' removed" for name in removed)
    changes.extend(f"parameter '{name}' added" for name in added)
    for name in before:
        if name in after and not same(before[name], after[name]):
            changes.extend(_definition_changes(name, before[name], after[name]))
    for extra in sorted((set(stored) | set(current)) - {"axes", "fixed"}):
        if not same(stored.get(extra), current.get(extra)):
            before_, after_ = shown(stored.get(extra)), shown(current.get(extra))
            changes.append(f"parameter conditions ('{extra}') {before_} -> {after_}")
    return changes


def _flatten(parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every parameter, searched or fixed, with its definition as one dict."""
    flat: dict[str, dict[str, Any]] = {}
    for name, axis in (parameters.get("axes") or {}).items():
        flat[name] = dict(axis)
    for name, value in (parameters.get("fixed") or {}).items():
        flat[name] = {"value": value}
    return flat


def _definition_changes(name: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`lr: high 0.1 -> 0.2`, `x: values [1, 2] -> [1, 3]`, one per changed field."""
    if set(before) != set(after):  # a range became a list, a list a fixed value...
        return [f"{name}: {_kind(before)} -> {_kind(after)}"]
    fields = list(before) + [key for key in after if key not in before]
    return [
        f"{name}: {key} {shown(before.get(key))} -> {shown(after.get(key))}"
        for key in fields
        if not same(before.get(key), after.get(key))
    ]


def _kind(definition: dict[str, Any]) -> str:
    if "values" in definition:
        return f"values {shown(definition['values'])}"
    if "value" in definition:
        return f"fixed {shown(definition['value'])}"
    return "range " + ", ".join(f"{key} {shown(value)}" for key, value in definition.items())


def drift_refusal(config_path: object, identity: str, changes: list[str], mutable_hint: str) -> str:
    """The one-line refusal: which sweep, what changed, and the ways to proceed (the `warm_start`
    advice once the config has that key)."""
    keep = (
        f" (with `warm_start` from '{identity}', the new sweep keeps what this one learned)"
        if "warm_start" in KEYS
        else ""
    )
    return (
        f"{config_path}: sweep '{identity}' already exists with a different definition: "
        f"{'; '.join(changes)}. To run the changed config, give it a new 'sweep_name'{keep}; "
        f"to start over under this name, run `mlflow-sweeper delete {config_path}` first. {mutable_hint}"
    )
