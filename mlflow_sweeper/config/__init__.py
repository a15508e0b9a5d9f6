"""The sweep config: its schema (`schema`), value checks (`checks`), the loaded form (`model`)
and the loader (`loading`). A new top-level key is one entry in `schema.SCHEMA`."""

from ..storages import resolve as resolve_storage_url
from .loading import check_sampler, load_config, load_configs, read_yaml
from .model import SweepConfig
from .objective import Metric, Objective
from .schema import (
    ARG_STYLES,
    DEFAULTS,
    ENV_MANAGERS,
    KEYS,
    MUTABLE_HINT,
    MUTABLE_KEYS,
    REQUIRED_KEYS,
    SCHEMA,
    Key,
)

__all__ = [
    "ARG_STYLES",
    "DEFAULTS",
    "ENV_MANAGERS",
    "KEYS",
    "MUTABLE_HINT",
    "MUTABLE_KEYS",
    "REQUIRED_KEYS",
    "SCHEMA",
    "Key",
    "Metric",
    "Objective",
    "SweepConfig",
    "check_sampler",
    "load_config",
    "load_configs",
    "read_yaml",
    "resolve_storage_url",
]
