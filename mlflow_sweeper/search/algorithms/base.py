"""The base of every search algorithm, and the seeds its samplers get."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from ...errors import ConfigProblem
from ...option_types import declared_types, type_problem
from ..grid import Grid
from ..space import SearchSpace
from ..values import Scalar

if TYPE_CHECKING:
    from ...config import Objective, SweepConfig

log = logging.getLogger(__name__)
# Sampler arguments whose type a YAML value can never be: functions, samplers, operators, trials.
_OBJECT_TYPES = ("Callable", "BaseSampler", "BaseMutation", "BaseCrossover", "FrozenTrial")


def _annotation(parameter: inspect.Parameter) -> str:
    annotation = parameter.annotation
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _takes_an_object(parameter: inspect.Parameter) -> bool:
    return any(kind in _annotation(parameter) for kind in _OBJECT_TYPES)


# Deprecations of options the sweeper passes, not the user: Optuna 5 deprecates `constraints_func`
# for `Trial.set_constraint`; the values are stored that way already, and the function only
# switches a sampler's handling of them on.
SWEEPERS_OWN_OPTIONS = re.compile(r"`constraints_func` has been deprecated")
_WARNED: set[str] = set()  # the sampler warnings this process has logged


def slot_seed(seed: int | None, slot: int) -> int | None:
    """An independent seed for budget slot `slot` of a sweep seeded with `seed`.

    Nearby integers make correlated first draws in numpy's legacy generator (which Optuna's
    samplers use), so slots would start from near-identical points; SeedSequence hashes the
    (seed, slot) pair into statistically independent states. None stays None (fresh entropy).
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence(entropy=seed, spawn_key=(slot,)).generate_state(1)[0])


def sweep_seed(config: SweepConfig) -> int | None:
    """The seed a sweep's slot seeds derive from: its `seed`, mixed with its name where it starts
    from earlier results. A follow-up sweep keeps the seed of the one it learns from (`refine`
    copies it), so its slots would draw that sweep's points again, slot for slot, where the
    sampler is still random (TPE's start-up, `random`)."""
    if config.seed is None or not config.warm_start:
        return config.seed
    name = int.from_bytes(hashlib.sha256(config.identity.encode()).digest()[:8], "big")
    return int(np.random.SeedSequence(entropy=[config.seed, name]).generate_state(1)[0])


class Algorithm:
    """How one algorithm turns a budget slot into parameters, and all that is its own.

    An algorithm that decides a slot's point alone (a grid, a permutation) returns it from
    `fixed_point`: O(1), no history needed. Otherwise `make_sampler` gives the Optuna sampler
    asked for that slot's point, with the trial history in the storage.

    Everything that differs between algorithms is asked of the algorithm, never decided by its
    name elsewhere: the config keys of its own (`own_keys`, `load_own_keys`), the checks of its
    budget, space, options and objective (each raises ConfigProblem), its budget, the notes said
    as a sweep starts, the parent's metrics at the close (`close_metrics`) and the report's
    sections only its sweeps have (`report_sections`).
    """

    name: ClassVar[str]
    sampler_class: ClassVar[type[optuna.samplers.BaseSampler] | None] = None
    needs_max_trials: ClassVar[bool] = True  # False: the space alone sets the budget (a grid)
    derived_budget: ClassVar[bool] = False  # True: max_trials does not even cap it (a fixed plan)
    needs_axes: ClassVar[bool] = True  # a sampler needs at least one parameter to search
    seed_per_slot: ClassVar[bool] = True  # False: every slot's sampler gets the sweep's own seed
    requires: ClassVar[tuple[str, str] | None] = None  # (module, extra) beyond the base install
    learns: ClassVar[bool] = False  # True: its sampler models the trials' values (needs `spec`)
    records_grid: bool = False  # fixed points are recorded under the grid's value lists
    own_keys: ClassVar[tuple[str, ...]] = ()  # top-level config keys only this algorithm reads
    grid: Grid | None = None  # the finite space's points by index, when the algorithm decodes them

    def __init__(self, space: SearchSpace, seed: int | None):
        self.space = space
        self.seed = seed

    @classmethod
    def from_config(cls, config: SweepConfig) -> Algorithm:
        """The algorithm for a loaded config (an algorithm with keys of its own reads them here)."""
        return cls(config.space, sweep_seed(config))

    # ---- checked when the config is loaded -------------------------------------------------

    @classmethod
    def load_own_keys(cls, space: SearchSpace, given: dict[str, Any]) -> dict[str, Any]:
        """The `SweepConfig` fields of this algorithm's `own_keys`, from the values `given` (only
        the keys the file gives), checked against the space."""
        return {}

    @classmethod
    def check_budget(cls, max_trials: int | None) -> None:
        if cls.needs_max_trials and max_trials is None:
            raise ConfigProblem("max_trials", f"required for algorithm {cls.name!r} (the sweep's budget)")

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        """Refuses a space this algorithm cannot search."""
        if cls.needs_axes and not space.axes:
            raise ConfigProblem("parameters", "nothing to search: every parameter is fixed")

    @classmethod
    def check_objective(cls, objective: Objective) -> None:
        """Refuses an objective this algorithm cannot measure (every algorithm takes any
        objective its sampler can search: that is rehearsed, see `rehearsal`), and no objective
        for an algorithm that learns from the trials' values."""
        if cls.learns and not objective.optimized:
            raise ConfigProblem(
                "spec",
                f"algorithm {cls.name!r} learns from the trials' values: give spec (metric and "
                "direction), or sweep without one with grid, random or qmc",
            )

    @classmethod
    def missing_requirement(cls) -> str | None:
        """What to install when a package this algorithm needs is missing, else None."""
        if cls.requires is None:
            return None
        module, extra = cls.requires
        try:
            importlib.import_module(module)
        except ImportError:
            return f"algorithm {cls.name!r} needs {module}: pip install 'mlflow-sweeper[{extra}]'"
        return None

    @classmethod
    def option_parameters(cls) -> list[inspect.Parameter]:
        """The sampler's keyword parameters `sampler_options` could name (all but `seed`)."""
        if cls.sampler_class is None:
            return []
        parameters = inspect.signature(cls.sampler_class.__init__).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p for p in parameters if p.kind in kinds and p.name not in ("self", "seed")]

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword arguments `sampler_options` may give: the sampler's, less `seed` and
        those that take a Python object (a function, a sampler), which YAML cannot give."""
        return [p.name for p in cls.option_parameters() if not _takes_an_object(p)]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuses a `sampler_options` name the sampler does not take, or a value of another type
        than the sampler declares (`"false"` for a flag).

        Cheap: what a value does to the sampler is checked by building it, on the sweep's path
        (`rehearsal`), so that `status` or `delete` never pay for it."""
        parameters = cls.option_parameters()
        valid = [p.name for p in parameters if not _takes_an_object(p)]
        objects = {p.name: p for p in parameters if _takes_an_object(p)}
        for option in options:
            key = f"sampler_options.{option}"
            if option == "seed":
                raise ConfigProblem(key, "set by the sweep's top-level 'seed' key (one per slot), not here")
            if option in objects:
                kind = _annotation(objects[option]).split("|")[0].strip()
                raise ConfigProblem(key, f"takes a Python object ({kind}), which a config file cannot give")
            if option not in valid:
                listing = ", ".join(valid) if valid else "none"
                raise ConfigProblem(key, f"not an option of algorithm {cls.name!r}; valid options: {listing}")
        declared = declared_types(cls.sampler_class.__init__) if cls.sampler_class is not None else {}
        for option, value in options.items():
            expected = type_problem(value, declared[option]) if option in declared else None
            if expected:
                raise ConfigProblem(f"sampler_options.{option}", f"expected {expected}, got {value!r}")

    # ---- used while the sweep runs ---------------------------------------------------------

    def budget(self, max_trials: int | None) -> int:
        """Slots in the whole sweep, across every agent."""
        assert max_trials is not None, f"{self.name} needs max_trials (checked with the config)"
        return max_trials

    def fixed_point(self, slot: int) -> dict[str, Scalar] | None:
        """The point of `slot` when the algorithm decides it alone; None to ask the sampler."""
        return None

    def slot_of(self, point: dict[str, Scalar]) -> int | None:
        """The slot whose fixed point is `point` (an earlier result holds it: it is not run
        again), or None: the algorithm has no fixed points, or none is this one."""
        return None

    def slot_count(self) -> int | None:
        """How many slots the algorithm has at most (its fixed points), or None: unbounded."""
        return None

    def budget_past(self, max_trials: int | None, held: frozenset[int]) -> int:
        """The budget when earlier results hold the fixed points of the slots `held`: they use
        none of it, so it reaches past them (never past the algorithm's last slot)."""
        base = budget = self.budget(max_trials)
        limit = self.slot_count()
        if not held or limit is None:
            return budget
        while True:
            extended = min(limit, base + sum(1 for slot in held if slot < budget))
            if extended == budget:
                return budget
            budget = extended

    def notes(self) -> list[str]:
        """What the user should know about how this sweep's space is searched, said once as the
        agent starts (not errors: the sweep runs)."""
        return []

    def close_metrics(self, trials: list[FrozenTrial]) -> dict[str, float]:
        """Metrics of the whole sweep logged on the parent run when it closes, from its trials."""
        return {}

    def report_sections(self, trials: list[FrozenTrial]) -> dict[str, Any]:
        """The report's sections only this algorithm's sweeps have: the key of the report chart
        that draws each, and what it draws (single-objective trials)."""
        return {}

    def make_sampler(
        self, seed: int | None, options: dict[str, Any], *, quiet: bool = False
    ) -> optuna.samplers.BaseSampler:
        """The sampler asked for one slot's point, seeded with `seed` (already per slot).

        Built once per slot: Optuna's warnings are not repeated for each. That a sampler is
        experimental is the sweeper's concern, not the user's; any other warning (a deprecated
        option) is logged once per agent, unless `quiet` (a rehearsal, not the sweep)."""
        assert self.sampler_class is not None, f"{self.name} decides its points alone"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sampler = self.sampler_class_for(options)(seed=seed, **options)
        for warning in [] if quiet else caught:
            if issubclass(warning.category, optuna.exceptions.ExperimentalWarning):
                continue
            if SWEEPERS_OWN_OPTIONS.search(str(warning.message)):
                continue
            text = f"{self.sampler_class.__name__}: {warning.message}"
            if text not in _WARNED:
                _WARNED.add(text)
                log.warning("%s", text)
        return sampler

    def sampler_class_for(self, options: dict[str, Any]) -> type[optuna.samplers.BaseSampler]:
        """The class of the sampler built with `options` (the one whose options are checked,
        unless an algorithm runs a variant of it)."""
        assert self.sampler_class is not None
        return self.sampler_class

    def sampler_for(self, slot: int, options: dict[str, Any]) -> optuna.samplers.BaseSampler:
        seed = slot_seed(self.seed, slot) if self.seed_per_slot else self.seed
        return self.make_sampler(seed, options)
