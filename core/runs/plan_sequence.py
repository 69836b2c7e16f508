"""What a step of the sequence family costs, per unit of what it does (issue 15): the units
`core.runs.plan_costs` counts for SASRec, BERT4Rec, GRU4Rec, the hybrid and multiscenario.

A step's CPU time is its flops at the probe's rate plus four costs the flop count misses:
AdamW over the dense tables, dropout draws, elementwise passes over the activations a step
keeps, and the loss's passes over its logits. Each is priced here per unit, measured with
one torch thread on the issue's 2-core machine: ADAM_PARAM_S, DROPOUT_S and ELEMENT_S by
micro-benchmarks (issue 15's /tmp/seqplan/adam.py, load average ~6), LOGIT_S from whole
epochs. The memory constants are counted from the models' code.

Before these, one figure per counted position (SASRec's, 1.1e-4 s from MovieLens-100k)
priced every model of the family: on the 10M set the plan said 21 min for SASRec and GRU4Rec
(measured 534 s and 457 s) and 10 min for the hybrid and multiscenario (788 s and 1476 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from core.train import sampled_softmax

#: AdamW per parameter per step: torch's single-tensor CPU path makes about a dozen passes
#: over parameter-sized tensors; a 50,000 x 64 table's step took 23.1 ms (7.2 ns a
#: parameter; issue 15's /tmp/seqplan/adam2.py). The family's item tables are dense, so
#: every step pays for the whole of them (ADAM_TRAFFIC at the probe's bandwidth said ~2 ms)
ADAM_PARAM_S = 7.2e-9
#: one dropout draw (a CPU bernoulli): 8.4 ns per element of a (12800, 64) tensor
DROPOUT_S = 8.4e-9
#: one element of a cache-sized elementwise op, forward or backward (add 0.12 ns, GELU
#: 0.5 ns per element of a (12800, 64) tensor); charged 3x per activation element a step keeps
ELEMENT_S = 0.3e-9
#: the loss's work per logit beyond its matmul's flops (masked_fill, cat, log-softmax and
#: their gradients over a (positions, classes) block larger than the cache). SASRec on the
#: 10M set (/tmp/team/scale_models2.json: 256,643 windows in 443 s of training loop, from
#: the run's samples_per_s) less its flops, AdamW, dropout and elements, over its 9.55e9
#: logits: 2.4e-8 s; GRU4Rec's epoch there gives 2.1e-8, and SASRec on MovieLens-100k (full
#: softmax over 1,682 items; 11.9 s CPU for two epochs) 2.2e-8
LOGIT_S = 2.2e-8
#: bytes per training row of a sequence view of the training data: `Interactions.ordered`
#: (user, item, time, rating: ~24 B) and its per-row index `_from_end` (16 B)
ORDERED_ROW = 40
#: transient bytes per training row while `training_windows` cuts the windows: about nine
#: int64 arrays of the rows (items, positions from the end, each row's window and slot, and
#: the fancy-indexed copies)
WINDOWS_BUILD_ROW = 72
#: the same for the hybrid: `history_index`'s temporaries and the sort behind `ordered`
HISTORY_BUILD_ROW = 40
#: and for multiscenario's `_train_tensors`: keys, their argsort, `_previous_in_group`'s
#: int64 arrays, the CSR copies its SVD and interest sums read
SCENARIO_BUILD_ROW = 80


def softmax_classes(n_items: int, params: Mapping, negatives: int) -> tuple[bool, int]:
    """Whether training samples the softmax (`core.train.sampled_softmax`) and the classes
    each scored position is compared with: 1 + negatives, or the whole catalogue."""
    sampled = sampled_softmax(str(params.get("loss", "auto")), n_items)
    return sampled, (1 + int(params.get("negatives", negatives)) if sampled else n_items)


def windows(n_users: int, n_train: int, length: int) -> float:
    """Training windows (`core.models._sequence.training_windows`): ceil((n - 1) / length)
    for a user with n items, estimated from the totals as the targets over `length` plus half
    a window per user for the last, partial one, and at least one per user (10M set: 286k
    estimated, 256,643 counted; MovieLens-100k: 2,415 and 2,412)."""
    targets = max(0, n_train - n_users)
    return min(max(n_users, targets / length + n_users / 2), max(1, targets))


def distinct(n_items: int, draws: float) -> float:
    """Distinct items among `draws` uniform draws: I (1 - e^(-draws / I)). Popular items
    repeat more, so real data has fewer (10M set: 10,752 draws by its item popularity hold
    7.1k distinct items; this count says 9.7k)."""
    return n_items * (1 - math.exp(-draws / max(1, n_items)))


def earlier(per_user: float, length: int) -> float:
    """Real (not padding) items among the `length` earlier items an example reads, averaged
    over a user's rows: min(row index, length) for a user with `per_user` rows (10M set,
    47.6 rows, length 20: 15.6)."""
    if per_user <= length:
        return max(0.0, (per_user - 1) / 2)
    return (length * (length - 1) / 2 + (per_user - length) * length) / per_user


def transformer_position(
    d: int, inner: int, heads: int, layers: int, length: int
) -> tuple[float, int, int, int]:
    """Per position of a stack of `core.models._sequence.TransformerBlock`s: forward flops
    (qkv, projection, MLP, attention over `length` keys), activation elements kept for the
    backward pass (norms, qkv, attention scores and probabilities, dropout masks, MLP,
    residuals), dropout draws, and the blocks' weights."""
    flops = layers * (2 * (4 * d * d + 2 * d * inner) + 4 * length * d)
    saved = layers * (14 * d + 3 * inner + 4 * heads * length) + 6 * d
    draws = layers * (heads * length + 2 * d + inner) + d
    return flops, saved, draws, layers * (4 * d * d + 2 * d * inner + 9 * d)


def gru_position(d: int, hidden: int, layers: int) -> tuple[float, int, int, int]:
    """The same for GRU4Rec's network: the GRU's input and hidden gate products and the map
    back to d; kept per step: both gate products, r, z, n and the state (~16 h a layer)."""
    gates = 3 * (d * hidden + (layers - 1) * hidden * hidden + layers * hidden * hidden)
    saved = layers * 16 * hidden + 4 * d
    return 2 * gates + 2 * hidden * d, saved, d + (layers - 1) * hidden, gates + hidden * d
