"""Search spaces for tuning: one `Param` per hyperparameter a model lets a tuner change.

A model class declares `SEARCH_SPACE: ClassVar[dict[str, Param]]` next to its keyword
arguments (an empty dict: nothing worth tuning, e.g. popularity). Each `Param` is a type
(whole number, number, or one of a few choices), a range and whether the range is searched
on a log scale. The tuner (core.runs.tuning) turns them into Optuna distributions; this
module stays free of Optuna so importing a model stays cheap.

A model's defaults are the tuner's first trial; a default outside its `Param` (EASE's
l2='auto', an L2 penalty of 0 on a log scale) is used as it is in that trial and not
searched around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: kind 'int', 'float' or 'choice'; [low, high] or choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def __post_init__(self) -> None:
        if self.kind == "choice":
            assert self.choices, "a choice parameter needs choices"
            return
        assert self.kind in ("int", "float"), f"unknown kind {self.kind!r}"
        assert self.low is not None and self.high is not None and self.low < self.high
        assert not self.log or self.low > 0, "a log-scale range must start above 0"

    def contains(self, value: object) -> bool:
        """Whether `value` is one this parameter's search can produce."""
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        """e.g. '16–256 (log)', 'one of 1, 2, 4'."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        return f"{self.low:g}–{self.high:g}" + (" (log)" if self.log else "")

    def position(self, value: float) -> float:
        """Where `value` lies in the range, 0 (low) to 1 (high), on the search's scale."""
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, self.low))
        return (v - lo) / (hi - lo)


def int_param(low: int, high: int, *, log: bool = False) -> Param:
    return Param("int", low, high, log)


def float_param(low: float, high: float, *, log: bool = False) -> Param:
    return Param("float", low, high, log)


def choice(*values) -> Param:
    return Param("choice", choices=tuple(values))


#: shared ranges for the neural models' loop settings
LEARNING_RATE = float_param(1e-4, 1e-1, log=True)
L2_PENALTY = float_param(1e-6, 1e-1, log=True)
