"""A search space in Hydra's sweep syntax, as Optuna distributions, and sampled values back as
overrides.

======================================  ==============================================
``hydra.sweeper.params`` value          Optuna distribution
======================================  ==============================================
``interval(0.1, 0.3)``                  ``FloatDistribution(0.1, 0.3)``
``tag(log, interval(1e-4, 1e-2))``      ``FloatDistribution(1e-4, 1e-2, log=True)``
``int(interval(1, 4))``                 ``IntDistribution(1, 4)`` (``tag(log, ...)``: log)
``range(1, 5)``, ``range(0.1, 0.3, 0.05)``  ``IntDistribution(1, 4)``, ``FloatDistribution(0.1, 0.25, step=0.05)``
``choice(a, b)`` or ``a,b``             ``CategoricalDistribution([a, b])``
anything else (``cosine``, ``0.2``)     a fixed override every trial gets
======================================  ==============================================

``range`` stops before its end, as Python's and Hydra's basic sweeper's do. A key may be a config
group (``regularization: choice(baseline, aggressive)``). Sampled floats are written into the
overrides with 6 significant digits, so a trial's command stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion_tuner.errors import ConfigError


@dataclass(frozen=True)
class Dimension:
    """One searched key.

    Attributes:
        name: the key without ``+``/``~`` (the parameter's name in the study).
        key: the override's key as written (``+foo`` keeps its ``+``).
        distribution: the Optuna distribution sampled for it.
    """

    name: str
    key: str
    distribution: Any

    def override(self, value: Any) -> str:
        """``key=value`` for a sampled value (floats of numeric distributions to 6 digits)."""
        from optuna.distributions import FloatDistribution

        if isinstance(self.distribution, FloatDistribution):
            value = rounded(value)
        return f"{self.key}={render_value(value)}"


@dataclass
class SearchSpace:
    """The searched dimensions and the overrides every trial gets."""

    dimensions: dict[str, Dimension] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    @property
    def distributions(self) -> dict[str, Any]:
        return {name: d.distribution for name, d in self.dimensions.items()}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The fixed overrides, then one ``key=value`` per sampled parameter."""
        sampled = [self.dimensions[n].override(v) for n, v in params.items()]
        return [*self.fixed, *sampled]

    def grid(self) -> dict[str, list[Any]]:
        """Every dimension's values, for the grid sampler.

        Raises:
            ConfigError: a continuous dimension (``interval``) has no grid.
        """
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, list[Any]] = {}
        problems = []
        for name, d in self.dimensions.items():
            dist = d.distribution
            if isinstance(dist, CategoricalDistribution):
                out[name] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                out[name] = list(range(dist.low, dist.high + 1, dist.step))
            elif isinstance(dist, FloatDistribution) and dist.step is not None:
                n = round((dist.high - dist.low) / dist.step)
                out[name] = [rounded(dist.low + i * dist.step) for i in range(n + 1)]
            else:
                problems.append(
                    f"hydra.sweeper.params.{name}: sampler=grid needs a finite set of values "
                    "(choice(...) or range(...)), not an interval"
                )
        if problems:
            raise ConfigError(problems)
        return out


def rounded(value: float) -> float:
    """``value`` to 6 significant digits (how sampled floats enter a run's config)."""
    return float(f"{float(value):.6g}")


def config_values(params: Mapping[str, Any], distributions: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's sampled parameters as its run's config holds them (see :meth:`Dimension.override`)."""
    from optuna.distributions import FloatDistribution

    return {
        name: rounded(v) if isinstance(distributions.get(name), FloatDistribution) else v
        for name, v in params.items()
    }


def render_value(value: Any) -> str:
    """A value in Hydra's override syntax; strings are quoted only where Hydra would otherwise
    read them as something else (``'2,3'`` would be a sweep, ``'true'`` a bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _parses_back(text, text):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _parses_back(text: str, value: Any) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_override(f"k={text}")
    except HydraException:
        return False
    return not parsed.is_sweep_override() and parsed.value() == value


def parse_space(params: Mapping[str, Any] | None, arguments: Sequence[str] = ()) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` and the command line's overrides.

    A command-line override replaces a ``params`` entry of the same key. Overrides that do not
    sweep are fixed overrides of every trial, in their order.

    Raises:
        ConfigError: every entry Optuna cannot sample, each naming its key and the fix.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    lines = [f"{k}={_param_text(v)}" for k, v in (params or {}).items()] + list(arguments)
    parser = OverridesParser.create()
    by_key: dict[str, Any] = {}
    problems: list[str] = []
    for line in lines:
        try:
            o = parser.parse_override(line)
        except HydraException as exc:
            problems.append(f"{line}: {exc}")
            continue
        by_key.pop(o.key_or_group, None)  # a later override of the key replaces it, in order
        by_key[o.key_or_group] = o
    space = SearchSpace()
    for name, o in by_key.items():
        if not o.is_sweep_override():
            space.fixed.append(o.input_line)
            continue
        try:
            dist = to_distribution(o)
        except ValueError as exc:
            problems.append(f"{o.input_line}: {exc}")
            continue
        space.dimensions[name] = Dimension(name, o.get_key_element(), dist)
    if problems:
        raise ConfigError(problems)
    if not space.dimensions:
        raise ConfigError(
            [
                "the search has no dimension: give hydra.sweeper.params (e.g. +search=tier1) or an "
                "override such as 'regularization.graph_dropout=interval(0.1,0.3)'"
            ]
        )
    return space


def _param_text(value: Any) -> str:
    """A ``hydra.sweeper.params`` value as override text (YAML may give a number or a bool)."""
    return value if isinstance(value, str) else render_value(value)


def to_distribution(o: Any) -> Any:
    """The Optuna distribution of one sweep override (see the module docstring).

    Raises:
        ValueError: a sweep Optuna cannot sample (glob, shuffle, unknown tags, bad bounds).
    """
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = o.value()
    tags = set(getattr(sweep, "tags", set()) or set())
    if isinstance(sweep, IntervalSweep):
        if tags - {"log"}:
            raise ValueError(f"unknown tag(s) {sorted(tags - {'log'})}; only 'log' is understood")
        lo, hi, log = sweep.start, sweep.end, "log" in tags
        if not (lo < hi):
            raise ValueError(f"an interval needs start < end, got ({lo}, {hi})")
        if log and lo <= 0:
            raise ValueError(f"tag(log, ...) needs a positive start, got {lo}")
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    if tags:
        raise ValueError("tags (tag(log, ...)) apply to interval(...) only")
    if isinstance(sweep, RangeSweep):
        if sweep.shuffle:
            raise ValueError("shuffle(...) has no meaning in a search; drop it")
        values = list(o.sweep_iterator())
        if not values:
            raise ValueError("the range is empty")
        step = sweep.step
        if step is None or step <= 0:
            raise ValueError("a range in a search needs a positive step")
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, step)):
            return IntDistribution(int(values[0]), int(values[-1]), step=int(step))
        return FloatDistribution(rounded(values[0]), rounded(values[-1]), step=rounded(step))
    if isinstance(sweep, ChoiceSweep):
        if sweep.shuffle:
            raise ValueError("shuffle(...) has no meaning in a search; drop it")
        choices = list(o.sweep_iterator())
        bad = [c for c in choices if not isinstance(c, str | int | float | bool | type(None))]
        if bad:
            raise ValueError(
                f"choice values must be strings, numbers, booleans or null, not {bad[0]!r}; "
                "quote a list, e.g. choice('2','2,3')"
            )
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError("a choice lists the same value twice")
        return CategoricalDistribution(choices)
    raise ValueError(
        f"{type(sweep).__name__} cannot be searched; use interval(a,b), tag(log, interval(a,b)), "
        "range(a,b[,step]) or choice(...)"
    )


def base_values(config: Any, space: SearchSpace) -> dict[str, Any]:
    """Each searched key's value in the config without the search (a group key: its option).

    Args:
        config: the sweep's composed config (with its ``hydra`` node).

    Raises:
        ConfigError: a key the config lacks, or a choice that does not list the config's value
            (a baseline trial must be a point Optuna can record).
    """
    from omegaconf import OmegaConf
    from optuna.distributions import CategoricalDistribution

    choices = config.hydra.runtime.choices
    out: dict[str, Any] = {}
    problems = []
    for name, d in space.dimensions.items():
        if name in choices:
            value = choices[name]
        else:
            value = OmegaConf.select(config, name, default=_MISSING)
            if value is _MISSING:
                problems.append(f"{name}: not in the config, so a baseline trial has no value")
                continue
            value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        dist = d.distribution
        if isinstance(dist, CategoricalDistribution) and value not in dist.choices:
            problems.append(
                f"hydra.sweeper.params.{name}: the baseline's value {value!r} is not among "
                f"the choices {list(dist.choices)}; add it, or set hydra.sweeper.baseline_runs=0"
            )
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{name}: the baseline's value {value} is not finite")
            continue
        out[name] = value
    if problems:
        raise ConfigError(problems)
    return out


_MISSING = object()
