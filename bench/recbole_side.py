"""RecBole 1.2.1 side of the RecBole comparison: one model, default settings, one JSON line.

Runs INSIDE the separate RecBole virtual environment (never RecScope's), e.g.

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 /tmp/recscope/recbole-venv/bin/python \
        bench/recbole_side.py --model BPR --workdir /tmp/recscope/rb_work

It imports nothing from RecScope. RecBole's own defaults are used (epochs 300, early
stopping after 10 evaluations without improvement on MRR@10, seed 2020, every rating a
positive interaction); the evaluation protocol is written out explicitly so the JSON
records it: general models RS 80/10/10 per user in random order, SASRec leave-last-out
by time, full ranking. `--dump-split DIR` also writes RecBole's exact train/valid/test
interactions (original ids) so RecScope can be scored on the very same rows.

Why not `recbole.quick_start`: it imports ray, which needs `pkg_resources`; the steps
below are the same as `run_recbole` minus the FLOPs count and with timers around them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

GENERAL_EVAL = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}
SEQUENTIAL_EVAL = {
    "split": {"LS": "valid_and_test"},
    "order": "TO",
    "group_by": "user",
    "mode": "full",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=["BPR", "LightGCN", "EASE", "SASRec"])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--workdir", default="/tmp/recscope/rb_work")
    parser.add_argument("--dump-split", default=None, help="folder for RecBole's split (CSV)")
    parser.add_argument("--epochs", type=int, default=None, help="override (smoke tests only)")
    parser.add_argument("--seed", type=int, default=None, help="RecBole's seed (default 2020)")
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="stop training after this many wall seconds (at an epoch end) and test the best "
        "checkpoint so far; the JSON then says stopped_by=deadline",
    )
    args = parser.parse_args(argv)

    # torch>=2.6 loads weights_only by default; RecBole's checkpoints are pickled dicts.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the working directory

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    sequential = args.model == "SASRec"
    overrides = {
        "eval_args": SEQUENTIAL_EVAL if sequential else GENERAL_EVAL,
        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
        "topk": [10],
        "show_progress": False,
        "checkpoint_dir": str(workdir / "saved"),
    }
    if args.dataset != "ml-100k":
        # RecBole's ml-100k.yaml loads these; other names (smoke-test subsets) need it said
        overrides["load_col"] = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    if sequential:
        # SASRec's default loss is CE over all items; RecBole refuses negative sampling then
        overrides["train_neg_sample_args"] = None
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.seed is not None:  # the split, the initial weights and the sampling
        overrides["seed"] = args.seed
    config = Config(model=args.model, dataset=args.dataset, config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    # RecBole logs to stderr and log/; stdout carries only the JSON line

    started = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_s = time.perf_counter() - started

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    stopped = _install_deadline(args.deadline_s)
    started, cpu_started = time.perf_counter(), time.process_time()
    best_valid_score, best_valid = trainer.fit(
        train_data, valid_data, saved=True, show_progress=False
    )
    fit_s, fit_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    epochs_run, best_epoch = len(trainer.train_loss_dict), _best_epoch(trainer)

    started = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    eval_s = time.perf_counter() - started

    result = {
        "side": "recbole",
        "model": args.model,
        "dataset": args.dataset,
        "recbole_version": _version("recbole"),
        "torch_version": torch.__version__,
        "libs": {lib: _version(lib) for lib in ("numpy", "scipy", "pandas")},
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "n_users": int(dataset.user_num - 1),  # RecBole reserves id 0 for padding
        "n_items": int(dataset.item_num - 1),
        "n_interactions": int(len(dataset.inter_feat)),
        "config": _config_summary(config),
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "data_s": round(data_s, 3),
        "fit_s": round(fit_s, 3),
        "fit_cpu_s": round(fit_cpu_s, 3),
        "stopped_by": _stopped_by(stopped, epochs_run, trainer.epochs),
        "deadline_s": args.deadline_s,
        "eval_s": round(eval_s, 3),
        "valid": {k: float(v) for k, v in best_valid.items()},
        "test": {k: float(v) for k, v in test.items()},
    }
    if sequential:
        # RecBole ranks already-seen items for sequential models (repeatable mode); this
        # re-scores test with the user's earlier items excluded, as RecScope always does.
        result["test_seen_excluded"] = _sequential_masked(trainer.model, dataset, test_data)
    elif args.dump_split:
        _dump_split(Path(args.dump_split), dataset, train_data, valid_data, test_data)
        result["split_dumped_to"] = str(Path(args.dump_split).resolve())
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def _install_deadline(deadline_s: float | None) -> dict:
    """Make RecBole's early-stopping check also stop once `deadline_s` wall seconds passed.

    The trainer then ends as after a normal early stop: the best checkpoint so far is the
    one tested. Returns a dict that records whether the deadline fired.
    """
    state = {"fired": False}
    if deadline_s is None:
        return state
    import recbole.trainer.trainer as trainer_module

    original = trainer_module.early_stopping
    end = time.perf_counter() + deadline_s

    def early_stopping_or_deadline(*args, **kwargs):
        best, cur_step, stop, update = original(*args, **kwargs)
        if not stop and time.perf_counter() > end:
            state["fired"] = True
            stop = True
        return best, cur_step, stop, update

    trainer_module.early_stopping = early_stopping_or_deadline
    return state


def _stopped_by(stopped: dict, epochs_run: int, max_epochs: int) -> str:
    if stopped["fired"]:
        return "deadline"
    return "max_epochs" if epochs_run >= max_epochs else "early_stopping"


def _config_summary(config) -> dict:
    keys = [
        "seed",
        "epochs",
        "train_batch_size",
        "eval_batch_size",
        "learner",
        "learning_rate",
        "weight_decay",
        "train_neg_sample_args",
        "eval_step",
        "stopping_step",
        "valid_metric",
        "eval_args",
        "threshold",
        "load_col",
        "rm_dup_inter",
        "val_interval",
        "user_inter_num_interval",
        "item_inter_num_interval",
        "embedding_size",
        "n_layers",
        "reg_weight",
        "n_heads",
        "hidden_size",
        "inner_size",
        "hidden_dropout_prob",
        "attn_dropout_prob",
        "hidden_act",
        "loss_type",
        "MAX_ITEM_LIST_LENGTH",
        "repeatable",
        "MODEL_INPUT_TYPE",
    ]
    out = {}
    for key in keys:
        value = config[key]
        if value is None and key not in config.final_config_dict:
            continue
        out[key] = (
            value if isinstance(value, (int, float, str, list, dict, type(None))) else str(value)
        )
    return out


def _best_epoch(trainer) -> int:
    """Epoch whose checkpoint was kept: `cur_step` counts evaluations since the best one."""
    return len(trainer.train_loss_dict) - 1 - trainer.cur_step * trainer.eval_step


def _sequential_masked(model, dataset, test_data) -> dict:
    """NDCG@10 / Recall@10 on test with each user's earlier items excluded from ranking."""
    import numpy as np
    import torch

    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    users = dataset.inter_feat[uid_field].numpy()
    items = dataset.inter_feat[iid_field].numpy()
    seen: dict[int, list[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        seen.setdefault(u, []).append(i)
    ndcg, recall = [], []
    model.eval()
    with torch.no_grad():
        for interaction, _, _, positive_i in test_data:
            interaction = interaction.to(model.device)
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -np.inf
            uids = interaction[uid_field].cpu().numpy()
            targets = positive_i.cpu().numpy()
            for row, (u, target) in enumerate(zip(uids.tolist(), targets.tolist(), strict=True)):
                earlier = [i for i in seen[u] if i != target]  # all but the held-out item
                scores[row, earlier] = -np.inf
            top = torch.topk(scores, 10, dim=1).indices.cpu().numpy()  # (B, 10)
            for row, target in enumerate(targets.tolist()):
                hit = np.flatnonzero(top[row] == target)
                ndcg.append(1.0 / np.log2(hit[0] + 2) if len(hit) else 0.0)
                recall.append(1.0 if len(hit) else 0.0)
    return {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall))}


def _dump_split(folder: Path, dataset, train_data, valid_data, test_data) -> None:
    """Write RecBole's split as CSV with the file's original user/item ids.

    Timestamps are left out on purpose: RecBole min-max normalises float fields
    (`normalize_all`), so the reader joins the original ones back by (user, item).
    """
    folder.mkdir(parents=True, exist_ok=True)
    uid, iid = dataset.uid_field, dataset.iid_field
    for name, data in (("train", train_data), ("valid", valid_data), ("test", test_data)):
        feat = data._dataset.inter_feat
        users = dataset.id2token(uid, feat[uid].numpy())
        items = dataset.id2token(iid, feat[iid].numpy())
        with open(folder / f"{name}.csv", "w") as out:
            out.write("user_id,item_id\n")
            out.writelines(f"{u},{i}\n" for u, i in zip(users, items, strict=True))


def _version(package: str) -> str:
    """The imported module's version (PYTHONPATH may shadow the venv's scipy)."""
    import importlib

    return str(importlib.import_module(package).__version__)


if __name__ == "__main__":
    sys.exit(main())
