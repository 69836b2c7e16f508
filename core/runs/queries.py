"""Questions about one finished run by id, as the CLI asks them: explain a score, similar items.

Each loads the run (once per workspace and run: finished runs do not change, but their
dataset may be replaced, so a kept run is used only while its dataset's fingerprint is the
one it was loaded with; otherwise it is loaded again, which refuses a run whose dataset
changed with one sentence), turns the file's ids into codes and asks the layer that
answers (`core.explain`, `core.retrieval`), which never loads runs itself.
"""

from __future__ import annotations

from collections import OrderedDict

from core.data.stored import current_fingerprint
from core.explain.explainer import Explanation, explain
from core.retrieval.similar import similar_items
from core.runs.pipeline import LoadedRun, load_run
from core.runs.store import RunStore

#: runs kept loaded, keyed by (workspace, run id)
_RUNS_KEPT = 4
_runs: OrderedDict[tuple[str, str], LoadedRun] = OrderedDict()


def cached_run(store: RunStore, run_id: str) -> LoadedRun:
    """`load_run` once per (workspace, run) while the run's dataset stays the same."""
    key = (str(store.home), run_id)
    if key in _runs and not _current(store, _runs[key]):
        del _runs[key]
    if key not in _runs:
        _runs[key] = load_run(store, run_id)
        while len(_runs) > _RUNS_KEPT:
            _runs.popitem(last=False)
    return _runs[key]


def explain_run(store: RunStore, run_id: str, user_id: str, item_id: str, **options) -> Explanation:
    """Explain run `run_id`'s score of item `item_id` for user `user_id` (ids as in the file)."""
    loaded = cached_run(store, run_id)
    user = int(loaded.dataset.user_codes([user_id])[0])
    item = int(loaded.dataset.item_codes([item_id])[0])
    return explain(loaded, user, item, **options)


def similar_run(store: RunStore, run_id: str, item_id: str, k: int = 10) -> dict:
    """`recscope similar RUN_ID --item ITEM_ID -k K`: the item id as in the uploaded file."""
    loaded = load_run(store, run_id)
    code = int(loaded.dataset.item_codes([item_id])[0])
    return similar_items(loaded, code, k)


def _current(store: RunStore, loaded: LoadedRun) -> bool:
    """True while the dataset stored under the run's dataset name is the one it was loaded on."""
    try:
        return current_fingerprint(store.home, loaded.dataset.name) == loaded.dataset.fingerprint
    except (OSError, ValueError):  # deleted or being replaced: load again, which says what is wrong
        return False
