"""What each model family costs on a data set: memory by part, and work per epoch and per
scored cell, for `core.runs.plan` to turn into a peak and a time on a device (issue 15).

The table is keyed by the registry's model name. Why here and not a class attribute of each
model: the model files were being rewritten by others (sparse item-kNN, a large-catalogue
EASE, sparse row updates, sampled softmax) while this was written; a declared cost on the
classes is the better long-term home. Each formula names the tensors it counts, so it can be
checked against the model's code; `core.runs.plan` scales them by measured device rates.

Sizes: U users, I items, N training interactions, d the embedding size, B the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from core.eval.evaluate import MEMORY_BUDGET_BYTES, auto_batch_size
from core.models.ease import L2_GRID, L2_USERS, MAX_ITEMS
from core.models.itemknn import DENSE_MAX_ITEMS
from core.models.lightgcn import effective_batch
from core.models.neumf import mlp_widths
from core.runs.plan_sequence import (
    ADAM_PARAM_S,
    DROPOUT_S,
    ELEMENT_S,
    HISTORY_BUILD_ROW,
    LOGIT_S,
    ORDERED_ROW,
    SCENARIO_BUILD_ROW,
    WINDOWS_BUILD_ROW,
    distinct,
    earlier,
    gru_position,
    softmax_classes,
    transformer_position,
    windows,
)
from core.runs.plan_shape import Cost, Shape

F32 = 4
F64 = 8
#: bytes per stored entry of a scipy CSR/CSC copy (int32 index + float64 value)
CSR_ENTRY = 12
#: AdamW keeps two moments per parameter, and the backward pass a gradient of the same size
ADAM_COPIES = 3
#: bytes AdamW reads and writes per parameter per step (param, grad, two moments; read+write)
ADAM_TRAFFIC = 7 * F32
#: co-occurrence products item-kNN sums per chunk (core.models.itemknn's _CHUNK_PRODUCTS)
KNN_CHUNK_PRODUCTS = 2**24
#: one core's CPU seconds per training example beyond the flop count (negative sampling,
#: indexing, autograd and optimiser calls per step), per family: measured on MovieLens-100k
#: (loo split, one torch thread; /tmp/plan measurements of issue 15) as (fit CPU seconds −
#: validation passes) / examples. Without these the estimates were 10-100x too short there.
#: (The sequence family is priced per unit of what its steps do: core.runs.plan_sequence.)
EXAMPLE_S = {"factorisation": 2.1e-6, "graph": 0.0}
#: LightGCN's propagation (forward and backward sparse products over the whole graph, at d
#: columns) per step, in probe-rate passes: 1.0 matched ML-100k (2.6 s CPU per epoch
#: measured, 2.45 s estimated; its per-example cost is inside this figure, hence graph 0.0)
GRAPH_PASSES = 1.0
#: item-kNN's ranking and sorting of each co-occurrence product, in sparse multiply-adds.
#: Taken from the 10M set (102 s CPU for 4.9e8 products at the probe's ~3.7e8 multiply-adds/s:
#: ~75); MovieLens-100k's small chunks stay in cache and need ~20 (0.61 s for 1.0e7), so
#: the plan is ~4x long there (2 s instead of 0.6 s) rather than 5x short at scale
KNN_PRODUCT_WORK = 75
#: forward + backward ≈ 3 × the forward's multiply-adds
TRAIN_FACTOR = 3
#: NeuMF's MLP runs layers 32, 16 and 8 wide, far below the probe's 256 × 256 matmul rate:
#: scoring the 10M set's 50k items ran at 11.1 M cells/s on one core, 9.0e-8 s per cell,
#: i.e. ~7.3k probe flops (81 GFLOP/s) for the ~1.5k flops the layers count (dim 64, 3
#: layers): this factor. Training at that size agrees: a step of 2048 pairs x 5 items took
#: 36 ms on a quiet core (168 s an epoch); without the factor the plan said 118 s, with it 184
NARROW_MLP_FACTOR = 5.0
#: the sequence family's memory parts, as the Train page names them
SEQUENCE_PARTS = {"held": "training rows and sequence views", "working": "building them"}


CostFn = Callable[[Shape, Mapping], Cost]


def score_block_bytes(shape: Shape) -> int:
    """The evaluator's (users × items) block with its sort buffers (core.eval.evaluate)."""
    rows = min(shape.n_users, auto_batch_size(shape.n_items))
    # plus the lists: the test evaluation keeps recs.parquet's 50 per user (RECS_K)
    return min(MEMORY_BUDGET_BYTES, rows * shape.n_items * 48) + shape.n_users * 50 * 48


def cost(model: str, shape: Shape, params: Mapping) -> Cost:
    """The cost of `model` (a registry name) with `params` on data of `shape`."""
    return COSTS.get(model, _embedding_model)(shape, params)


def _pop(shape: Shape, params: Mapping) -> Cost:
    # counting the training rows: 0.61 s CPU for the 10M set's 9.5M, ~16 probe multiply-adds each
    return Cost(parameters=shape.n_items * F64, sparse=16 * shape.n_train, score_flops=1.0)


def _itemknn(shape: Shape, params: Mapping) -> Cost:
    """Sparse XᵀX in chunks of at most KNN_CHUNK_PRODUCTS products, each ranked before the
    next (core.models.itemknn.top_k_cosine); W dense up to DENSE_MAX_ITEMS, else k entries
    per target item."""
    k, i = int(params.get("k", 50)), shape.n_items
    keep = min(k, i)
    dense = i <= DENSE_MAX_ITEMS
    weights = i * i * F32 if dense else i * keep * (8 + 8 + F32)  # rows, cols, values
    products = shape.n_train * shape.per_user  # Σ_u |u|²: the co-occurrence products
    return Cost(
        parameters=weights,
        # a chunk's entries with their keys, similarities and sort order, and X's CSR/CSC
        # (a chunk holds distinct co-occurring pairs: at most its products, and at most I²)
        working=min(products, i * i, KNN_CHUNK_PRODUCTS) * 48 + 2 * shape.n_train * CSR_ENTRY,
        sparse=products * KNN_PRODUCT_WORK,
        score_flops=2.0 * shape.per_user if dense else 2.0 * shape.per_user * keep / max(1, i),
        alternative="lower k",
        parts={"parameters": "neighbour weights", "working": "co-occurrence chunk"},
    )


def _ease(shape: Shape, params: Mapping) -> Cost:
    """Dense EASE up to MAX_ITEMS; above it the low-rank solver when the model has one
    (`solver` auto/lowrank: core.models._ease_large), else a refusal."""
    i = shape.n_items
    grid = len(L2_GRID) if params.get("l2", "auto") == "auto" else 1
    solver = params.get("solver")  # absent: a build whose EASE is dense only
    if solver == "lowrank" or (solver == "auto" and i > MAX_ITEMS):
        return _ease_lowrank(shape, params, grid)
    limit = None
    if i > MAX_ITEMS:
        limit = (
            f"EASE solves a dense {i:,} × {i:,} item matrix, above its limit of {MAX_ITEMS:,} items"
        )
    lowrank = "use solver=lowrank, " if solver is not None else "use "
    return Cost(
        parameters=i * i * F32,
        working=2 * i * i * F64 + 2 * shape.n_train * CSR_ENTRY,  # Gram + Cholesky factor
        flops=grid * (i**3 / 3 + 2 * i**3),  # Cholesky, then the inverse from it
        sparse=shape.n_train * shape.per_user,  # XᵀX
        validates=grid > 1,
        epochs=grid,
        score_flops=2.0 * shape.per_user,
        limit=limit,
        alternative=f"{lowrank}itemknn, or filter rare items to at most {MAX_ITEMS:,} items",
        parts={"parameters": "item × item weights", "working": "Gram matrix and its factor"},
    )


def _ease_lowrank(shape: Shape, params: Mapping, grid: int) -> Cost:
    """Top-r eigenpairs of XᵀX by subspace iteration (X applied, never XᵀX formed): float64
    (n_items, r + 16) blocks and one (n_users, r + 16); each λ only rescales them."""
    i, u = shape.n_items, shape.n_users
    r = min(int(params.get("rank", 512)), i)  # the model's default rank (core.models.ease)
    width = min(i, r + 16)
    iters = 6  # 1 + 4 power iterations + the final projection (core.models._ease_large)
    return Cost(
        parameters=i * r * F32,
        working=3 * i * width * F64 + u * width * F64 + 2 * shape.n_train * (CSR_ENTRY + 4),
        flops=iters * 2 * i * width * width,  # the QR of each iteration
        sparse=iters * 2 * shape.n_train * width,  # Xᵀ(X Q)
        # factored once; each λ is judged on a fixed sample of users (core.models.ease): on
        # the 10M set the plan said 42 min from five factorisations and full passes, the fit
        # took 3 min 45 s
        epochs=1,
        validates=grid > 1,
        validations=grid if grid > 1 else 0,
        validation_share=min(1.0, L2_USERS / max(1, u)),
        score_flops=4.0 * r,  # x V, then · Vᵀ, per item
        alternative=f"a smaller rank (rank={max(16, r // 4)}), or filter rare items",
        parts={"parameters": "item × rank vectors", "working": "subspace iteration blocks"},
    )


def _factorisation(
    shape: Shape, params: Mapping, *, towers: int = 1, mlp: bool = False, sparse: bool = False
) -> Cost:
    """BPR-MF and NeuMF: a user and an item table per tower, trained on (1 + negatives)
    pairs per interaction; NeuMF adds an MLP over each pair. `sparse`: the tables are
    updated row by row (SparseAdam over the batch's rows: core.train "Sparse updates"), so a
    step moves only those rows, though the two moments are still whole tables."""
    d, b = int(params.get("dim", 64)), int(params.get("batch_size", 2048))
    neg = int(params.get("negatives", 4))
    table = (shape.n_users + shape.n_items) * d * towers
    rows = min(table, b * (2 + neg) * d * towers)  # table cells one step looks up
    per_pair, per_cell = 2.0 * d * towers, 2.0 * d * towers
    if mlp:
        train_mlp, grid_mlp = _mlp_flops(d, int(params.get("layers", 3)))
        per_pair += NARROW_MLP_FACTOR * train_mlp  # the same narrow layers as scoring
        per_cell = 2.0 * d + NARROW_MLP_FACTOR * grid_mlp  # GMF as one matmul, the MLP per cell
    steps = -(-shape.n_train // b)
    return Cost(
        parameters=table * F32,
        optimizer=(2 * table + rows if sparse else ADAM_COPIES * table) * F32,
        activations=b * (2 + neg) * d * towers * F32 * (8 if mlp else 3),
        flops=TRAIN_FACTOR * shape.n_train * (1 + neg) * per_pair,
        traffic=steps * (rows if sparse else table) * ADAM_TRAFFIC,
        overhead_s=shape.n_train * (1 + neg) * EXAMPLE_S["factorisation"],
        epochs=int(params.get("epochs", 100)),
        validates=True,
        score_flops=per_cell,
        alternative=f"a smaller dim (dim={max(8, d // 4)})",
    )


def _mlp_flops(d: int, layers: int) -> tuple[float, float]:
    """NeuMF's MLP flops per training pair and per scored cell (core.models.neumf: widths
    d, d/2, d/4, …; the first layer is split into a user and an item half, and scoring
    applies each half once per user or item, so a cell pays only the broadcast add)."""
    widths = mlp_widths(d, layers)
    rest = sum(2.0 * a * b for a, b in zip(widths[1:-1], widths[2:], strict=True)) + 2 * widths[-1]
    return 2 * 2.0 * d * widths[1] + rest, widths[1] + rest


def _lightgcn(shape: Shape, params: Mapping) -> Cost:
    """Every step propagates the whole graph `layers` times (sparse N × d products), and
    a large log gets larger batches (`max_steps`, the model's own rule)."""
    d, layers = int(params.get("dim", 128)), int(params.get("layers", 3))
    b = effective_batch(
        shape.n_train, int(params.get("batch_size", 8192)), int(params.get("max_steps", 64))
    )
    base = _factorisation(shape, {**params, "batch_size": b})
    nodes = shape.n_users + shape.n_items
    steps = -(-shape.n_train // b)
    return Cost(
        parameters=base.parameters,
        optimizer=base.optimizer,
        # every layer's (nodes, d) output kept for backward, and the normalised adjacency
        activations=base.activations + 2 * (layers + 1) * nodes * d * F32 + 2 * shape.n_train * 20,
        flops=base.flops,
        traffic=base.traffic,
        sparse=GRAPH_PASSES * steps * layers * 2 * shape.n_train * d,
        overhead_s=shape.n_train * (1 + int(params.get("negatives", 4))) * EXAMPLE_S["graph"],
        epochs=base.epochs,
        validates=True,
        score_flops=2.0 * d,
        alternative=base.alternative,
    )


def _sequence(shape: Shape, params: Mapping, *, net: str = "transformer") -> Cost:
    """SASRec, BERT4Rec and GRU4Rec (and models with no formula of their own): a network over
    windows of `max_len` items (padding included), every real position scored against the
    catalogue (full softmax) or 1 + `negatives` items (sampled); per-unit prices in
    `core.runs.plan_sequence`. BERT4Rec holds each window `cloze_copies` + 1 times and scores
    its masked positions (`mask_prob` of them) and each window's last item."""
    d, b = int(params.get("dim", 64)), int(params.get("batch_size", 256))
    length = int(params.get("max_len", 50))
    sampled, classes = softmax_classes(shape.n_items, params, 1024)
    rows = windows(shape.n_users, shape.n_train, length)
    scored = max(0, shape.n_train - shape.n_users)  # every item but a user's first
    if "cloze_copies" in params:  # bert4rec
        copies = int(params["cloze_copies"])
        scored = copies * float(params.get("mask_prob", 0.2)) * scored + rows
        rows *= copies + 1
    positions = rows * length  # every slot of a row goes through the network
    layers = int(params.get("layers", 1 if net == "gru" else 2))
    if net == "gru":
        flops, saved, draws, weights = gru_position(d, int(params.get("hidden", 128)), layers)
    else:
        inner, heads = int(params.get("inner", d)), int(params.get("heads", 1))
        flops, saved, draws, weights = transformer_position(d, inner, heads, layers, length)
    weights += (shape.n_items + 1 + length) * d  # the item table and positions
    logits = scored * classes
    alternative = f"a smaller dim (dim={max(8, d // 2)}) or max_len"
    if not sampled and "loss" in params:
        neg = int(params.get("negatives", 1024))
        alternative = f"the sampled softmax (loss=sampled, {neg} negatives), or {alternative}"
    return Cost(
        parameters=weights * F32,
        optimizer=ADAM_COPIES * weights * F32,
        # a step's kept activations, and its logits with their softmax and gradient
        activations=int(b * length * saved + b * logits / max(1, rows) * 3) * F32,
        held=int(rows * (length + 1) * F64 + ORDERED_ROW * shape.n_train),
        working=max(WINDOWS_BUILD_ROW * shape.n_train, _eval_views(shape, ORDERED_ROW)),
        flops=TRAIN_FACTOR * (positions * flops + logits * 2 * d),
        overhead_s=math.ceil(rows / b) * weights * ADAM_PARAM_S
        + positions * (3 * saved * ELEMENT_S + draws * DROPOUT_S)
        + logits * LOGIT_S,
        epochs=int(params.get("epochs", 100)),
        validates=True,
        score_flops=2.0 * d,
        alternative=alternative,
        parts=SEQUENCE_PARTS,
    )


def _hybrid(shape: Shape, params: Mapping) -> Cost:
    """The hybrid two towers (core.models.hybrid): an example per training row; a step runs
    the item tower over the distinct items its histories, targets and negatives name, and
    the user tower over each example's `max_len` earlier items. Item text is not priced (the
    plan does not know whether the data has it)."""
    d, b = int(params.get("dim", 64)), int(params.get("batch_size", 512))
    length, n, items = int(params.get("max_len", 20)), shape.n_train, shape.n_items
    sampled, classes = softmax_classes(items, params, 1024)
    steps = math.ceil(n / b)
    # item-tower rows a step runs: the distinct real codes of its histories, targets, negatives
    codes = b * (earlier(shape.per_user, length) + 1) + classes - 1
    tower = distinct(items, codes) if sampled else items
    weights = items * d + 5 * d * d + length * d  # ids, the two MLPs, positions
    row, example = 7 * d, 6 * length * d + 8 * d  # activation elements kept
    return Cost(
        parameters=weights * F32,
        optimizer=ADAM_COPIES * weights * F32,
        activations=int(tower * row + b * (example + 3 * classes)) * F32,
        # the history index (rows, users, items, scenarios, starts), the sequence views
        # of the training data and the loop's permutation
        held=(5 * F64 + ORDERED_ROW + 2 * F64) * n,
        working=max(HISTORY_BUILD_ROW * n, _eval_views(shape, ORDERED_ROW + F64)),
        flops=TRAIN_FACTOR
        * (steps * tower * 4 * d * d + n * (6 * d * d + 4 * length * d + 2 * d * classes)),
        overhead_s=steps * weights * ADAM_PARAM_S
        + 3 * (steps * tower * row + n * example) * ELEMENT_S
        + (steps * tower + n) * d * DROPOUT_S
        + n * classes * LOGIT_S,
        epochs=int(params.get("epochs", 50)),
        validates=True,
        score_flops=2.0 * d,
        alternative=f"a smaller dim (dim={max(8, d // 2)}) or max_len",
        parts=SEQUENCE_PARTS,
    )


def _multiscenario(shape: Shape, params: Mapping) -> Cost:
    """The multiscenario model (core.models.multiscenario): an example per training row; a
    step sums each example's whole history (`_history_bags`: per_user rows of d), runs the
    experts and scores the batch's items plus `negatives` (sampled) or the catalogue.
    Priced for one scenario (the plan does not know how many the data has)."""
    d, b, n = int(params.get("dim", 64)), int(params.get("batch_size", 1024)), shape.n_train
    k, experts = int(params.get("interest_dim", 16)), int(params.get("experts", 4))
    sampled, _ = softmax_classes(shape.n_items, params, 2048)
    classes = b + int(params.get("negatives", 2048)) if sampled else shape.n_items
    if params.get("topology", "mmoe") == "ple":
        experts = int(params.get("levels", 2)) * (experts + int(params.get("scenario_experts", 2)))
    weights = 3 * shape.n_items * d + shape.n_items + (experts + 2) * d * d  # E, C, L, bias
    # logits (score, bias, interest term, logQ), the history bag gathered and scattered
    # back, the scenario's d x d tower gathered per example, the experts
    example = 8 * classes + 2 * shape.per_user * d + d * d + (2 * experts + 6) * d
    return Cost(
        parameters=weights * F32,
        optimizer=ADAM_COPIES * weights * F32,
        activations=int(b * example) * F32,
        # per row: users, items, scenarios, previous items, the flat history, the sequence
        # view, the scoring history (sparse: index + value), the loop's permutation
        held=(6 * F64 + ORDERED_ROW + 20) * n + shape.n_users * k * F32,
        working=max(SCENARIO_BUILD_ROW * n, _eval_views(shape, ORDERED_ROW)),
        flops=TRAIN_FACTOR * n * (2 * (d + k) * classes + 2 * (experts + 1) * d * d),
        overhead_s=math.ceil(n / b) * weights * ADAM_PARAM_S
        + n * (3 * example * ELEMENT_S + d * DROPOUT_S + classes * LOGIT_S),
        epochs=int(params.get("epochs", 30)),
        validates=True,
        score_flops=2.0 * (d + k),
        alternative=f"a smaller dim (dim={max(8, d // 2)}) or fewer negatives",
        parts=SEQUENCE_PARTS,
    )


def _embedding_model(shape: Shape, params: Mapping) -> Cost:
    """Any other model: priced as a transformer sequence model (an item table, windows)."""
    return _sequence(shape, params)


def _eval_views(shape: Shape, row_bytes: int) -> int:
    """The test evaluation of a sequence model: the score block beside the sequence views the
    train + valid history builds (`Interactions.ordered` and its index) for each user's newest
    items."""
    return score_block_bytes(shape) + row_bytes * (shape.n_train + shape.n_users)


#: models whose embedding tables are declared sparse (`nn.Embedding(..., sparse=True)` in
#: their files, 5ce555c), so each step updates only its batch's rows
SPARSE_TABLES = frozenset({"bpr", "neumf"})

COSTS: dict[str, CostFn] = {
    "pop": _pop,
    "itemknn": _itemknn,
    "ease": _ease,
    "bpr": lambda s, p: _factorisation(s, p, sparse="bpr" in SPARSE_TABLES),
    "neumf": lambda s, p: _factorisation(s, p, towers=2, mlp=True, sparse="neumf" in SPARSE_TABLES),
    "lightgcn": _lightgcn,
    "sasrec": _sequence,
    "bert4rec": _sequence,
    "gru4rec": lambda s, p: _sequence(s, p, net="gru"),
    "hybrid": _hybrid,
    "multiscenario": _multiscenario,
}
