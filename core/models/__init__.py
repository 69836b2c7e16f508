"""Model registry: name -> class, imported lazily so the CLI starts fast."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from core.errors import ParameterError
from core.models.base import Range, RecommenderBase

# name -> "module:Class"; every model behind the same Recommender protocol
_REGISTRY: dict[str, str] = {
    "pop": "core.models.pop:Popularity",
    "itemknn": "core.models.itemknn:ItemKNN",
    "ease": "core.models.ease:EASE",
    "bpr": "core.models.bpr:BPRMF",
    "neumf": "core.models.neumf:NeuMF",
    "lightgcn": "core.models.lightgcn:LightGCN",
    "sasrec": "core.models.sasrec:SASRec",
    "bert4rec": "core.models.bert4rec:BERT4Rec",
    "gru4rec": "core.models.gru4rec:GRU4Rec",
    "hybrid": "core.models.hybrid:HybridTwoTower",
    "multiscenario": "core.models.multiscenario:MultiScenario",
}

DESCRIPTIONS: dict[str, str] = {
    "pop": "Most popular items for everyone — the baseline every model must beat.",
    "itemknn": "Item-based k-nearest neighbours with cosine similarity and shrinkage.",
    "ease": "EASE: a closed-form linear item-item model (Steck, 2019); strong and fast.",
    "bpr": "Matrix factorisation trained with the BPR pairwise loss (Rendle et al., 2009).",
    "neumf": "Neural collaborative filtering: GMF + MLP (He et al., 2017).",
    "lightgcn": "LightGCN: graph convolution over the user-item graph (He et al., 2020).",
    "sasrec": "SASRec: Transformer self-attention over each user's recent items (Kang & "
    "McAuley, 2018).",
    "bert4rec": "BERT4Rec: bidirectional self-attention trained by filling in hidden items "
    "(Sun et al., 2019).",
    "gru4rec": "GRU4Rec: a recurrent network over each user's recent items (Hidasi et al., 2016).",
    "hybrid": "Two-tower model reading item text and attributes; recommends cold items.",
    "multiscenario": "Scenario-aware model: shared layers with per-scenario experts and towers "
    "(MMoE, or PLE with topology=ple).",
}


def available() -> list[str]:
    """Names of models whose module is present in this build."""
    return [name for name in _REGISTRY if importlib.util.find_spec(_REGISTRY[name].split(":")[0])]


def model_class(name: str) -> type[RecommenderBase]:
    if name not in _REGISTRY:
        raise ParameterError(f"Model '{name}' is unknown; use one of {', '.join(available())}.")
    module, cls = _REGISTRY[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ParameterError(
                f"Model '{name}' is not available in this build; use one of "
                f"{', '.join(available())}."
            ) from None
        raise


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter as a form shows it: name, default, type, one line of help and the
    values allowed (None: any value of its type)."""

    name: str
    default: object
    kind: type
    help: str
    range: Range | None = None


#: run-level options set by the Train page and CLI flags, not per-model fields
RUN_OPTIONS = ("device_choice", "seed", "epochs")


def param_specs(name: str) -> list[ParamSpec]:
    """The hyperparameters of model `name` a person may change, with defaults and help."""
    cls = model_class(name)
    helps, ranges = cls.PARAM_HELP, cls.param_ranges()
    return [
        ParamSpec(key, default, type(default), helps.get(key, ""), ranges.get(key))
        for key, default in cls.default_params().items()
        if key not in RUN_OPTIONS and isinstance(default, (bool, int, float, str))
    ]


def make_model(name: str, **params) -> RecommenderBase:
    """Construct a model by registry name with keyword hyperparameters, all checked.

    Unknown names, values of the wrong type, NaN/inf and values outside the model's
    PARAM_RANGES raise a one-sentence ParameterError here, so `new_run` refuses them before
    a run record exists.
    """
    cls = model_class(name)
    allowed = cls.default_params()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ParameterError(
            f"Model '{name}' has no parameter '{unknown[0]}'; its parameters are "
            f"{', '.join(sorted(allowed))}."
        )
    return cls(**params).validate_params()


__all__ = [
    "DESCRIPTIONS",
    "RecommenderBase",
    "available",
    "make_model",
    "model_class",
    "param_specs",
    "ParamSpec",
    "Range",
]
