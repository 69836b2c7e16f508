"""The `Recommender` protocol and the parts every model shares (written once).

A model is constructed from keyword hyperparameters, learns in `fit`, and scores users
over the whole catalogue with `score`. `recommend`, `save` and `load` are written once here
(in `RecommenderBase`) on top of `score` and two small hooks (`_state` / `_set_state`).

History: a model scores a user from the interactions it was told are known. `fit` sets
that to the training data; the evaluator calls `set_history(split.known_for("test"))`
before scoring the test part, so validation items count as known history (as RecBole does).
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from core.data.dataset import Interactions
from core.device import CHOICES as DEVICE_CHOICES
from core.device import pick_device
from core.errors import NotFittedError, ParameterError, RecScopeError
from core.eval.ranking import check_k, known_flat_indices, top_k
from core.storage import atomic_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


@dataclass(frozen=True)
class Range:
    """The values one hyperparameter may take, declared by a model in `PARAM_RANGES`.

    Numbers between `low` and `high` (either may be None; `low_open`/`high_open` exclude
    the end), and for a parameter whose default is a string, the strings in `choices` (with
    bounds as well, numbers are allowed besides them: EASE's l2 = 'auto' or a number).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None:
            return value < self.high if self.high_open else value <= self.high
        return True

    def describe(self, noun: str) -> str:
        """e.g. 'a whole number of at least 1', 'a number in [0, 1)'."""
        low, high = _short(self.low), _short(self.high)
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{low}, {high}{right}"
        if self.low is not None:
            return f"{noun} {'above' if self.low_open else 'of at least'} {low}"
        if self.high is not None:
            return f"{noun} {'below' if self.high_open else 'of at most'} {high}"
        return noun


#: shared ranges, for models to use in PARAM_RANGES
POSITIVE = Range(low=0, low_open=True)
AT_LEAST_ONE = Range(low=1)
NON_NEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1, high_open=True)  # dropout-like: 0 <= p < 1
#: vector sizes: past a few thousand a model only fills memory (dim=10**8 asked for 400 GB)
DIMENSION = Range(low=1, high=4096)


class RecommenderBase:
    """Shared behaviour: params, history, recommend, save/load, cancel flag.

    Subclasses implement `fit`, `score`, `_state() -> dict[str, Tensor]` and
    `_set_state(state)`, and may override `item_embeddings`.
    """

    name: ClassVar[str] = "base"
    #: one-line help per hyperparameter, shown by the Train page
    PARAM_HELP: ClassVar[dict[str, str]] = {}
    #: True for models that train with the shared loop (epochs, device)
    trains_with_loop: ClassVar[bool] = False
    #: allowed values per hyperparameter, merged along the class hierarchy (`param_ranges`);
    #: the type comes from the default (bool, whole number, number, string)
    PARAM_RANGES: ClassVar[dict[str, Range]] = {}

    device: torch.device
    n_users_: int
    n_items_: int
    history_: sp.csr_matrix

    # -- hyperparameters -------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as given (JSON-serialisable)."""
        sig = inspect.signature(type(self).__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {
            p.name: getattr(self, p.name)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in kinds
        }

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }

    @classmethod
    def param_ranges(cls) -> dict[str, Range]:
        """PARAM_RANGES of the class and its bases (the subclass wins)."""
        out: dict[str, Range] = {}
        for klass in reversed(cls.__mro__):
            out.update(getattr(klass, "PARAM_RANGES", {}) or {})
        return out

    @classmethod
    def check_param_values(cls, params: dict[str, Any]) -> None:
        """Raise a ParameterError naming the first parameter whose value is not allowed.

        The one shared validator (types from `default_params`, finiteness, `param_ranges`);
        called by `validate_params` and so by `core.models.make_model` before a run record
        exists. Unknown names are `make_model`'s to refuse.
        """
        defaults, ranges = cls.default_params(), cls.param_ranges()
        for name, value in params.items():
            if name in defaults:
                _check_value(name, value, defaults[name], ranges.get(name))

    def validate_params(self):
        """Check every hyperparameter (shared rules, then the model's `_check_params`);
        returns self."""
        self._check_params()
        return self

    def _check_params(self) -> None:
        """Subclasses add checks that relate several parameters; call super() first."""
        type(self).check_param_values(self.get_params())

    def _resolve_device(self) -> torch.device:
        return pick_device(getattr(self, "device_choice", None))

    # -- history ---------------------------------------------------------------------
    def set_history(self, known: Interactions) -> None:
        """Interactions the model may treat as the user's known past when scoring."""
        self.history_ = known.csr()
        self._history_changed(known)

    def _history_changed(self, known: Interactions) -> None:
        """Hook for models whose scores depend on history (item-kNN, EASE, SASRec)."""

    # -- ranking -----------------------------------------------------------------------
    def recommend(
        self, user_codes: Any, k: int = 10, exclude_seen: bool = True, *, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes and scores per user, shapes (B, k); known items excluded.

        Ranked by `core.eval.ranking.top_k` (the evaluator's routine and tie rule; pass the
        run's seed to get the lists it scored). k must be between 1 and the number of items
        (a ParameterError says so otherwise); where fewer than k items are left after the
        exclusion the rest is item -1 with score -inf.
        """
        self._check_fitted()
        users = as_codes(user_codes)
        k = check_k(k, self.n_items_)
        with torch.inference_mode():
            scores = self.score(users)  # (B, n_items)
            exclude = None
            if exclude_seen:
                exclude = known_flat_indices(
                    self.history_, users.numpy(), scores.shape[1], scores.device
                )
            items, values = top_k(
                scores, k, users=users.to(scores.device), exclude=exclude, seed=seed
            )
        return items.cpu().numpy(), values.cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        return None

    def fit_notes(self) -> list[str]:
        """Sentences about how the last fit was done, for the run record's notes (e.g. which
        EASE solver ran); none by default."""
        return []

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Constructor arguments as JSON beside a state dict of tensors; never pickle.

        Written into a temp folder that replaces `folder` whole (core.storage.atomic_dir):
        a reader sees the old model or the new one, and a failed write (disk full) leaves
        no half-written model. I/O errors are OSErrors naming the file.
        """
        self._check_fitted()
        config = {
            "model": self.name,
            "params": self.get_params(),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self._state().items()}
        with atomic_dir(Path(folder)) as tmp:
            name = CONFIG_FILE
            try:
                (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
                name = WEIGHTS_FILE
                # a Python file object: torch's own writer turns a full disk into a RuntimeError
                with open(tmp / WEIGHTS_FILE, "wb") as handle:
                    torch.save(state, handle)
            except OSError as err:
                err.filename = str(Path(folder) / name)  # the temp name would mean nothing
                raise

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> RecommenderBase:
        """Rebuild with `cls(**params)` and load tensors with `weights_only=True`."""
        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except (OSError, ValueError) as err:
            raise RecScopeError(
                f"The model files in {folder} are missing or unreadable ({err}); train the run "
                "again."
            ) from err
        params = dict(config["params"])
        if device is not None and "device_choice" in params:
            params["device_choice"] = device
        model = cls(**params)
        try:  # a run saved by an older version may hold a value this one no longer has
            model.validate_params()
        except RecScopeError as err:
            raise RecScopeError(
                f"The model in {folder} was saved with settings this version cannot rebuild "
                f"({err}); train the run again."
            ) from err
        model.n_users_ = int(config["n_users"])
        model.n_items_ = int(config["n_items"])
        model.device = model._resolve_device()
        try:
            state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        except OSError as err:
            raise RecScopeError(
                f"The model weights {folder / WEIGHTS_FILE} cannot be read ({err.strerror}); "
                "train the run again."
            ) from err
        try:
            model._set_state({k: v.to(model.device) for k, v in state.items()})
        except RuntimeError as err:  # tensors of another architecture (load_state_dict)
            raise RecScopeError(
                f"The model weights in {folder} do not fit this version's {cls.name} "
                "(they were saved by an older architecture); train the run again."
            ) from err
        model.history_ = sp.csr_matrix((model.n_users_, model.n_items_), dtype=np.float32)
        return model

    # -- checks ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(self)

    def _start_fit(self, train: Interactions) -> None:
        """Common start of `fit`: device, sizes, history."""
        if len(train) == 0:
            raise RecScopeError(f"{type(self).__name__} cannot train on zero interactions.")
        self.device = self._resolve_device()
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.set_history(train)

    def _items_or_all(self, item_codes: Any) -> torch.Tensor | None:
        return None if item_codes is None else as_codes(item_codes).to(self.device)


def as_codes(codes: Any) -> torch.Tensor:
    """Integer codes from a list, array or tensor, as a 1-D int64 CPU tensor."""
    if isinstance(codes, torch.Tensor):
        return codes.reshape(-1).long().cpu()
    # a copy: codes often come from read-only pandas/Arrow buffers, which torch must not share
    return torch.from_numpy(np.array(codes, dtype=np.int64, ndmin=1).reshape(-1))


def _check_value(name: str, value: Any, default: Any, rng: Range | None) -> None:
    """One parameter against its default's type and its declared range."""
    if name == "device_choice":
        ok = value is None or (
            isinstance(value, str) and (value in DEVICE_CHOICES or value.startswith("cuda:"))
        )
        if not ok:
            raise ParameterError(
                f"Parameter 'device_choice' must be one of {', '.join(DEVICE_CHOICES)}; "
                f"got {value!r}."
            )
        return
    if default is None:
        return  # no declared type
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"Parameter '{name}' must be true or false; got {value!r}.")
        return
    # numbers.Real: numpy scalars (a tuner's suggestions) count as numbers too
    number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if isinstance(default, str):
        choices = rng.choices if rng else ()
        numeric = rng is not None and (rng.low is not None or rng.high is not None)
        if isinstance(value, str) and (not choices or value in choices):
            return
        if numeric and number and math.isfinite(value) and rng.contains(value):
            return
        names = ", ".join(repr(c) for c in choices)
        if numeric:
            text = f"{names} or {rng.describe('a number')}" if choices else rng.describe("a number")
        else:
            text = f"one of {names}" if len(choices) > 1 else names or "a string"
        raise ParameterError(f"Parameter '{name}' must be {text}; got {value!r}.")
    whole = isinstance(default, int)
    noun = "a whole number" if whole else "a number"
    allowed = rng.describe(noun) if rng else noun
    ok = number and math.isfinite(value) and (not whole or float(value).is_integer())
    if not ok or (rng is not None and not rng.contains(value)):
        raise ParameterError(f"Parameter '{name}' must be {allowed}; got {value!r}.")


def _short(x: float | None) -> str:
    return "" if x is None else (f"{int(x)}" if float(x).is_integer() else f"{x:g}")
