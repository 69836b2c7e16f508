"""One torchrun rank of tests/test_distributed.py: fit a model on the saved 'planted' data.

Run as `python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py
HOME MODEL PARAMS_JSON OUT`. Each rank writes OUT/rank<r>.json (the parameter sums after each
of its first optimiser steps, the sum of its first batch, its TrainResult) and OUT/rank<r>.pt
(its final weights), so the test can compare the ranks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from core import distributed
from core.data.dataset import Dataset
from core.data.split import split
from core.models import make_model


def main(home: str, name: str, params: str, out: str) -> None:
    here = distributed.world()
    steps: list[float] = []
    batches: list[float] = []

    def after_step(optimizer, args, kwargs) -> None:
        if len(steps) < 3:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            steps.append(float(sum(p.detach().double().sum() for p in params)))

    register_optimizer_step_post_hook(after_step)
    parts = split(Dataset.load(Path(home), "planted"), "loo", seed=42)
    model = make_model(name, **json.loads(params))
    own_loss = model._loss

    def loss(batch, gen):
        if not batches:
            batches.append(float(batch[0].double().sum()))  # what this rank trained on first
        return own_loss(batch, gen)

    model._loss = loss
    model.fit(parts.train, parts.valid if here.leader else None)
    folder = Path(out)
    torch.save(model.net_.state_dict(), folder / f"rank{here.rank}.pt")
    report = {
        "rank": here.rank,
        "steps": steps,
        "first_batch": batches[0],
        "result": model.train_result_.to_dict(),
    }
    (folder / f"rank{here.rank}.json").write_text(json.dumps(report))
    distributed.leave()


if __name__ == "__main__":
    main(*sys.argv[1:5])
