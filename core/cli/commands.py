"""The `recscope` commands: each takes the parsed arguments and returns a JSON-ready dict.

Imports are inside the commands so `recscope --help` and light commands start fast.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

from core.errors import RecScopeError

log = logging.getLogger("recscope")

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


def cmd_ingest(args) -> dict:
    from core.data.ingest.ingest import find_companions, ingest
    from core.data.schema import ColumnMapping

    path = Path(args.path)
    companions = find_companions(path) if path.exists() else {}
    items = args.items or companions.get("items")
    users = args.users or companions.get("users")
    mapping = None
    overrides = {
        "user_id": args.user_col,
        "item_id": args.item_col,
        "rating": args.rating_col,
        "timestamp": args.time_col,
        "scenario": args.scenario_col,
    }
    if any(overrides.values()):
        mapping = ColumnMapping(**overrides)
    dataset, report = ingest(
        path,
        items=items,
        users=users,
        name=args.name,
        format=args.format,
        mapping=mapping,
        min_rating=args.min_rating,
        date_format=args.date_format,
        replace=args.replace,
        home=_home(),
    )
    for line in report.lines():
        log.info(line)
    return {
        "dataset": dataset.name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": len(dataset.interactions),
        "scenarios": dataset.scenarios,
        "report": report.to_dict(),
    }


def cmd_ingest_sample(args) -> dict:
    """Ingest the shipped sample data as 'sample' unless it is already there."""
    from core.data.dataset import dataset_summary, list_datasets
    from core.data.ingest.ingest import ingest

    home = _home()
    if "sample" in list_datasets(home) and not args.force:
        return {"dataset": "sample", "created": False, **dataset_summary(home, "sample")}
    dataset, _ = ingest(
        SAMPLE_DIR / "interactions.csv",
        items=SAMPLE_DIR / "items.csv",
        users=SAMPLE_DIR / "users.csv",
        name="sample",
        replace=args.force,
        home=home,
    )
    return {"dataset": dataset.name, "created": True, "n_interactions": len(dataset.interactions)}


def cmd_datasets(args) -> dict:
    from core.data.dataset import dataset_summary, list_datasets

    home = _home()
    rows = []
    for name in list_datasets(home):
        meta = dataset_summary(home, name)
        rows.append({k: meta.get(k) for k in ("name", "n_users", "n_items", "n_interactions")})
        rows[-1]["scenarios"] = meta.get("scenarios", [])
    return {"datasets": rows}


def cmd_train(args) -> dict:
    """Train a run in this process: a new one, or the queued `--run-id` a page launched.

    Either way the process claims the run (pid, heartbeat, job.log; core.runs.jobs
    job_process), so a `kill -9` reads as failed and Cancel on a page stops it. With
    `--nproc N` (or a run created with nproc) this process is the launcher: it claims the run
    and trains it on N torchrun ranks (`_launch`); a rank runs `_train_as_rank`.
    """
    from core import distributed
    from core.runs.jobs import job_record
    from core.runs.store import RunStore

    if args.dry_run:  # before the run store: a dry run creates nothing, not even runs/
        return _plan(args).to_dict()
    store = RunStore(_home())
    if distributed.world().distributed:
        return _train_as_rank(store, args)
    if args.print_torchrun:
        return _torchrun_commands(args)
    if args.run_id:
        run_id = args.run_id
    else:
        run_id = _new_train_run(store, args, args.nproc or 1)
    log.info("run %s started", run_id)
    record = job_record(store, run_id, "train")
    nproc = args.nproc or int(record.get("nproc") or 1)
    if nproc > 1:
        return _launch(store, run_id, record, nproc, args)
    return _train_here(store, run_id, record, args)


def _train_here(store, run_id: str, record: dict, args) -> dict:
    from core.device import pick_device
    from core.runs.jobs import device_slot, job_process
    from core.runs.pipeline import train_run
    from core.runs.store import recording_outcome
    from core.train import raise_if_cancelled

    device = pick_device(record.get("params", {}).get("device_choice") or args.device)
    # outer recorder: what fails before train_run's own (the device wait, a cancel while
    # queued) still ends the record; a run is never left "running" by this process
    with job_process(store, run_id), recording_outcome(store, run_id, "Training"):
        with device_slot(store, run_id, str(device)):
            raise_if_cancelled("before training started")
            train_run(store, run_id, progress=_show_epoch)
    return _finished(store, run_id)


def _launch(store, run_id: str, record: dict, nproc: int, args) -> dict:
    """Train `run_id` on `nproc` torchrun ranks; this process holds the run and the devices."""
    import contextlib

    from core import distributed
    from core.device import pick_device
    from core.errors import CancelledError
    from core.runs.jobs import device_slot, job_process, run_ranks
    from core.runs.liveness import ACTIVE, log_tail
    from core.runs.store import recording_outcome
    from core.train import cancel_requested, raise_if_cancelled

    device = pick_device(record.get("params", {}).get("device_choice") or args.device)
    distributed.check_nproc(nproc, device)
    keys = [f"cuda:{i}" for i in range(nproc)] if device.type == "cuda" else [str(device)]
    with job_process(store, run_id), recording_outcome(store, run_id, "Training"):
        with contextlib.ExitStack() as slots:
            for key in keys:  # every GPU the ranks use, or the CPU
                slots.enter_context(device_slot(store, run_id, key))
            raise_if_cancelled("before training started")
            store.update(run_id, nproc=nproc)
            code = run_ranks(store, run_id, nproc)
        if store.read(run_id).get("status") in ACTIVE:  # rank 0 never recorded an outcome
            if cancel_requested():
                raise CancelledError(f"Run {run_id} was cancelled; nothing saved.")
            tail = log_tail(store.folder(run_id) / "job.log")
            raise RecScopeError(
                f"Training on {nproc} processes stopped (torchrun exit code {code}) before "
                f"rank 0 recorded an outcome{': ' + tail if tail else '.'}"
            )
    record = store.read(run_id)
    if record.get("status") == "failed":
        raise RecScopeError(record.get("error") or f"Run {run_id} failed; see its job.log.")
    return _finished(store, run_id)


def _train_as_rank(store, args) -> dict:
    """One torchrun rank: rank 0 trains, evaluates and writes the run; the others train their
    share. A rank started by `recscope train --nproc` gets `--run-id`; ranks started by hand
    (several machines, a shared RECSCOPE_HOME) create the run on rank 0 and share its id."""
    from core import distributed
    from core.device import pick_device
    from core.runs.jobs import cancel_on_sigterm, job_process
    from core.runs.pipeline import train_rank
    from core.runs.store import recording_outcome

    here = distributed.world()
    distributed.die_with_parent()
    try:
        with cancel_on_sigterm():
            run_id = args.run_id
            if not run_id:
                distributed.join(pick_device(args.device))
                created = ""
                if here.leader:
                    created = _new_train_run(store, args, here.size)
                run_id = distributed.share_text(created, pick_device(args.device))
            if here.leader and not store.read(run_id).get("pid"):  # no launcher holds it
                with job_process(store, run_id), recording_outcome(store, run_id, "Training"):
                    train_rank(store, run_id, progress=_show_epoch)
            else:
                train_rank(store, run_id, progress=_show_epoch)
    finally:
        distributed.leave()
    if not here.leader:
        return {"run_id": run_id, "rank": here.rank, "world_size": here.size}
    return _finished(store, run_id)


def _torchrun_commands(args) -> dict:
    """The commands that train this request on one machine and on several, unexecuted."""
    import shlex

    from core import distributed

    nproc = args.nproc or 2
    request = ["train", "--dataset", args.dataset or "DATASET", "--model", args.model or "MODEL"]
    request += ["--split", args.split, "--seed", str(args.seed), "--device", args.device]
    if args.epochs:
        request += ["--epochs", str(args.epochs)]
    for pair in args.param:
        request += ["--param", pair]
    one = ["recscope", *request, "--nproc", str(nproc), "--json"]
    return {
        "one_machine": shlex.join(one),
        "several_machines": distributed.multinode_command(nproc, [*request, "--json"]),
        "note": (
            "Run the several-machines command on every machine with NODE_RANK=0, 1, …; "
            "HOST is machine 0's address; RECSCOPE_HOME must be one folder every machine "
            "shares, with the dataset ingested there."
        ),
    }


def _show_epoch(event: dict) -> None:
    from core.train import raise_if_cancelled

    parts = [f"epoch {event['epoch']}/{event['epochs']}"]
    if event.get("loss") is not None:
        parts.append(f"loss {event['loss']:.4f}")
    if event.get("valid_metric") is not None:
        parts.append(f"valid {event['metric_name']} {event['valid_metric']:.4f}")
    log.info("  ".join(parts))
    raise_if_cancelled(f"after epoch {event['epoch']}")


def _finished(store, run_id: str) -> dict:
    record = store.read(run_id)
    if record.get("status") == "cancelled":
        raise RecScopeError(f"Run {run_id} was cancelled.")
    return _public_record(record)


def cmd_evaluate(args) -> dict:
    from core.eval.evaluate import evaluate
    from core.runs.pipeline import load_run
    from core.runs.store import RunStore

    loaded = load_run(RunStore(_home()), args.run_id, device=args.device)
    ks = tuple(sorted(set(args.k))) if args.k else (5, 10, 20)
    result = evaluate(loaded.model, loaded.split, "test", ks=ks)
    return {"run_id": args.run_id, **result.summary()}


def cmd_recommend(args) -> dict:
    from core.runs.pipeline import load_run, recommendations_table
    from core.runs.store import RunStore

    loaded = load_run(RunStore(_home()), args.run_id, device=args.device)
    code = loaded.dataset.user_codes([args.user])
    if args.add or args.remove:  # what if: the list of an edited history, no retraining
        from core.explain.whatif import recommend_edited

        edited = recommend_edited(loaded, args.user, args.add, args.remove, args.k)
        return {"run_id": args.run_id, **edited}
    table = recommendations_table(loaded, code, args.k)
    return {
        "run_id": args.run_id,
        "user_id": args.user,
        "items": table[["rank", "item_id", "title", "score"]].to_dict("records"),
    }


def cmd_explain(args) -> dict:
    from core.runs.queries import explain_run
    from core.runs.store import RunStore

    explanation = explain_run(RunStore(_home()), args.run_id, args.user, args.item)
    return {"run_id": args.run_id, **explanation.to_json()}


def cmd_similar(args) -> dict:
    from core.runs.queries import similar_run
    from core.runs.store import RunStore

    return similar_run(RunStore(_home()), args.run_id, args.item, args.k)


def cmd_transfer(args) -> dict:
    from core.runs.scenario_runs import new_transfer, run_transfer
    from core.runs.store import RunStore
    from core.scenarios.transfer import MS

    store = RunStore(_home())
    run_id = args.run_id or new_transfer(
        store,
        args.dataset,
        args.source or _missing("--source", "transfer"),
        args.target or _missing("--target", "transfer"),
        ms=tuple(sorted(set(args.m))) if args.m else MS,
        max_users=args.max_users,
        seed=args.seed,
        include_hybrid=bool(args.hybrid),
        device=args.device,
        epochs=args.epochs,
    )
    _run_job(store, run_id, "transfer", partial(run_transfer, store, run_id))
    return {"run_id": run_id, **(store.result(run_id) or {})}


def cmd_scenarios_leaderboard(args) -> dict:
    from core.runs.scenario_runs import new_leaderboard, run_leaderboard
    from core.runs.store import RunStore

    store = RunStore(_home())
    run_id = args.run_id or new_leaderboard(
        store,
        args.dataset or _missing("--dataset", "scenarios leaderboard"),
        base=args.base,
        catalogue=args.catalogue,
        seed=args.seed,
        device=args.device,
        epochs=args.epochs,
        base_params=_parse_params(args.base_param),
        multiscenario_params=_parse_params(args.param),
    )
    record = _run_job(store, run_id, "leaderboard", partial(run_leaderboard, store, run_id))
    return {"run_id": run_id, "status": record["status"], **(store.result(run_id) or {})}


def cmd_tune(args) -> dict:
    """Tune a model (a new study, or `--resume STUDY`), then train the best parameters as a
    run; prints the study's result with `job_id` (this tuning job) and `run_id` (the run)."""
    from core.runs.store import RunStore
    from core.runs.tuning import DEFAULT_BUDGET_S, new_tune, run_tune

    store = RunStore(_home())
    run_id = args.run_id
    if not run_id:
        budget = args.budget
        if budget is None and args.trials is None:
            budget = DEFAULT_BUDGET_S
        run_id = new_tune(
            store,
            args.dataset,
            args.model,
            split_method=args.split,
            seed=args.seed,
            budget_s=budget,
            n_trials=args.trials,
            device=args.device,
            resume=args.resume,
            epochs=args.epochs,
            params=_parse_params(args.param),
        )
    record = _run_job(store, run_id, "tune", partial(run_tune, store, run_id))
    return {"job_id": run_id, "status": record["status"], **(store.result(run_id) or {})}


def cmd_runs(args) -> dict:
    from core.runs.store import RunStore

    records = RunStore(_home()).list(dataset=args.dataset, kind=args.kind)
    return {"runs": [_public_record(r) for r in records]}


# -- helpers --------------------------------------------------------------------------


def _run_job(store, run_id: str, kind: str, work) -> dict:
    """Run a scenario job body here (core.runs.jobs.run_job, which claims the run for this
    process: pid, heartbeat, SIGTERM cancels at the next stage or batch)."""
    from core.runs.jobs import run_job

    record = run_job(store, run_id, kind, work)
    if record.get("status") == "cancelled":
        raise RecScopeError(f"Job {run_id} was cancelled.")
    return record


def _public_record(record: dict) -> dict:
    from core.runs.store import kind_of

    keys = ("run_id", "dataset", "model", "split", "seed", "params", "device", "status")
    out = {"kind": kind_of(record), **{k: record.get(k) for k in keys}}
    out["metrics"] = record.get("metrics", {})
    out["timings"] = record.get("timings", {})
    if record.get("counts"):  # users scored / not evaluable / without history, per part
        out["counts"] = record["counts"]
    if record.get("distributed"):  # world size, backend, samples/s of each rank
        out["distributed"] = record["distributed"]
    if record.get("error"):
        out["error"] = record["error"]
    return out


def _parse_params(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; values parsed as JSON when they can be (numbers, true/false)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RecScopeError(f"--param '{pair}' is not KEY=VALUE; write e.g. --param l2=250.")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _new_train_run(store, args, nproc: int) -> str:
    """A queued training run from `recscope train`'s flags (the launcher's or rank 0's),
    refused before it exists when the plan says the model will not fit."""
    from core.runs.pipeline import new_run
    from core.runs.plan import refuse

    if not args.ignore_plan:
        plan = _plan(args)
        refuse(plan)
        log.info("plan: %s", plan.sentence)
    return new_run(
        store,
        args.dataset or _missing("--dataset"),
        args.model or _missing("--model"),
        split_method=args.split,
        seed=args.seed,
        device=args.device,
        epochs=args.epochs,
        params=_parse_params(args.param),
        nproc=nproc,
    )


def _plan(args):
    """The plan (`core.runs.plan`) of `recscope train`'s request."""
    from core.runs.plan import plan_model

    return plan_model(
        _home(),
        args.dataset or _missing("--dataset"),
        args.model or _missing("--model"),
        _parse_params(args.param),
        device=args.device,
        epochs=args.epochs,
        split_method=args.split,
        seed=args.seed,
    )


def _missing(flag: str, command: str = "train"):
    raise RecScopeError(f"{flag} is required; see `recscope {command} --help`.")


def _home() -> Path:
    from core.runs.store import workspace_home

    return workspace_home()
