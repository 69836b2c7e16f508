"""The sizes of a data set and one model's cost on it: what `core.runs.plan_costs` computes and
`core.runs.plan` turns into bytes and seconds (issue 15). Kept apart so the cost formulas
of each family can live in their own module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    """The sizes of a data set that the formulas need."""

    n_users: int
    n_items: int
    n_train: int  # training interactions

    @property
    def per_user(self) -> float:
        return self.n_train / max(1, self.n_users)


@dataclass(frozen=True)
class Cost:
    """One model's estimate on one data set, before any device rate is applied.

    Memory in bytes by part; work as floating-point operations (`flops`), bytes moved
    (`traffic`), sparse entries touched (`sparse`) and seconds of per-example overhead
    (`overhead_s`) per epoch; `epochs` the most it runs;
    `score_flops` per (user, item) scored cell; `limit` a sentence when the model refuses the
    data whatever the memory (EASE above its dense limit).
    """

    parameters: int = 0
    optimizer: int = 0
    activations: int = 0
    working: int = 0  # closed-form fits: Gram matrix, similarity blocks
    held: int = 0  # through the fit and the evaluation: training rows, sequence views
    flops: float = 0.0
    traffic: float = 0.0
    sparse: float = 0.0
    overhead_s: float = 0.0  # per epoch: what the formulas miss, measured (plan_costs.EXAMPLE_S)
    epochs: int = 1
    validates: bool = False  # a validation ranking pass after each epoch
    #: validation passes in a fit when they are not one per epoch (the lowrank EASE factors
    #: once and validates each λ), and the share of users such a pass ranks
    validations: int | None = None
    validation_share: float = 1.0
    score_flops: float = 0.0
    limit: str | None = None
    alternative: str = "filter rare items or users to shrink the data"
    parts: Mapping[str, str] = field(default_factory=dict)
