"""The options of every `recscope` command (argparse), each bound to its handler."""

from __future__ import annotations

import argparse
import re

from core.cli.commands import (
    cmd_datasets,
    cmd_evaluate,
    cmd_explain,
    cmd_ingest,
    cmd_ingest_sample,
    cmd_recommend,
    cmd_runs,
    cmd_scenarios_leaderboard,
    cmd_similar,
    cmd_train,
    cmd_transfer,
    cmd_tune,
)

DEVICES = ("auto", "cpu", "cuda", "mps")
DESCRIPTION = (
    "`recscope …`: the dashboard's twin. With --json every command prints one JSON document."
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `error: recscope train: argument …; see --help`.

    Exit 2, as argparse does; its default (the whole usage block, then the error) is several
    lines, and the CLI contract is one line per error.
    """

    def error(self, message: str):
        text = " ".join(message.split()).rstrip(".")
        self.exit(2, f"error: {self.prog}: {text}; see `{self.prog} --help`.\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _whole(text, 0)


def build_parser() -> argparse.ArgumentParser:
    from core.data.ingest.ingest import FORMATS
    from core.data.split import METHODS
    from core.models import _REGISTRY
    from core.runs.store import KINDS

    parser = Parser(prog="recscope", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_text: str, under=sub) -> argparse.ArgumentParser:
        p = under.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        p.set_defaults(handler=handler)
        return p

    p = command("ingest", cmd_ingest, "Read an interaction file into a named dataset.")
    p.add_argument("path")
    p.add_argument("--items", help="item table (title, text, category, attributes)")
    p.add_argument("--users", help="user table (attributes)")
    p.add_argument("--name", help="dataset name (default: from the file name)")
    p.add_argument("--format", default="auto", choices=FORMATS)
    for field in ("user", "item", "rating", "time", "scenario"):
        p.add_argument(f"--{field}-col", help=f"column holding the {field}")
    p.add_argument("--min-rating", type=float, help="keep ratings >= X as positives")
    p.add_argument(
        "--date-format", help="strftime format of the timestamp column, e.g. %%d/%%m/%%Y"
    )
    p.add_argument(
        "--replace", action="store_true", help="overwrite an existing dataset of this name"
    )

    p = command("ingest-sample", cmd_ingest_sample, "Ingest the shipped sample data as 'sample'.")
    p.add_argument("--force", action="store_true", help="re-ingest even if present")

    command("datasets", cmd_datasets, "List the datasets in the workspace.")

    p = command("train", cmd_train, "Train a model on a dataset and evaluate it.")
    p.add_argument("--dataset")
    p.add_argument("--model", choices=list(_REGISTRY))
    p.add_argument("--split", default="loo", choices=METHODS)
    p.add_argument("--seed", type=non_negative_int, default=42)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-id", help="train an already created (queued) run")
    p.add_argument(
        "--nproc",
        type=positive_int,
        help="train on N processes under torchrun (one per GPU; gloo CPU processes without)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (estimated peak memory and time, memory available, verdict) and "
        "create nothing",
    )
    p.add_argument(
        "--ignore-plan",
        action="store_true",
        help="start even when the plan refuses the model (the estimate may be wrong)",
    )
    p.add_argument(
        "--print-torchrun",
        action="store_true",
        help="print the torchrun commands for one machine and for several, and train nothing",
    )

    p = command("evaluate", cmd_evaluate, "Evaluate a finished run on its test split.")
    p.add_argument("run_id")
    p.add_argument("--k", type=positive_int, action="append", help="cut-off (repeat)")
    p.add_argument("--device", default=None)

    p = command("recommend", cmd_recommend, "Top-k recommendations of a run for one user.")
    p.add_argument("run_id")
    p.add_argument("--user", required=True, help="user id as in the uploaded file")
    p.add_argument("-k", type=positive_int, default=10)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--add", nargs="+", action="extend", default=[], metavar="ITEM",
        help="what if: item ids appended to the user's history as the newest, in order",
    )  # fmt: skip
    p.add_argument(
        "--remove", nargs="+", action="extend", default=[], metavar="ITEM",
        help="what if: item ids taken out of the user's history",
    )  # fmt: skip

    p = command("explain", cmd_explain, "Why a run scores an item for a user (SHAP values).")
    p.add_argument("run_id")
    p.add_argument("--user", required=True, help="user id as in the uploaded file")
    p.add_argument("--item", required=True, help="item id as in the uploaded file")

    p = command("similar", cmd_similar, "Nearest neighbours of an item under a run (Faiss).")
    p.add_argument("run_id")
    p.add_argument("--item", required=True, help="item id as in the uploaded file")
    p.add_argument("-k", type=positive_int, default=10)

    p = command(
        "transfer", cmd_transfer, "Cross-scenario transfer: lift over target-only vs history m."
    )
    p.add_argument("--dataset", default="sample")
    p.add_argument("--source", help="scenario the users are active in")
    p.add_argument("--target", help="scenario where they are cold")
    p.add_argument(
        "--m", type=non_negative_int, action="append", help="target interactions kept (repeat)"
    )
    p.add_argument("--max-users", type=positive_int, default=500)
    # the text two-tower is opt-in, as on the Scenarios page: an epoch of it took 190-300 s on
    # the sample data against ~35 s for the scenario-aware model (issue 16)
    text_model = p.add_mutually_exclusive_group()
    text_model.add_argument(
        "--hybrid", action="store_true", help="also train the text model (slow on a CPU)"
    )
    text_model.add_argument(
        "--no-hybrid", action="store_true", help="leave the text model out (the default)"
    )
    _job_options(p)

    group = sub.add_parser("scenarios", help="Scenario analyses (see its subcommands).")
    scenarios = group.add_subparsers(dest="scenarios_command", required=True)
    what = "Per-scenario leaderboard: one model per scenario, pooled, multiscenario (MMoE and PLE)."
    p = command("leaderboard", cmd_scenarios_leaderboard, what, under=scenarios)
    p.add_argument("--dataset")
    p.add_argument("--base", default="ease", choices=list(_REGISTRY), help="reference model")
    p.add_argument("--catalogue", default="scenario", choices=("scenario", "all"))
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--base-param", action="append", default=[], metavar="KEY=VALUE")
    _job_options(p)

    what = "Tune a model's hyperparameters under a time or trial budget (an Optuna study)."
    p = command("tune", cmd_tune, what)
    p.add_argument("--dataset")
    p.add_argument("--model", choices=list(_REGISTRY))
    p.add_argument("--split", default="loo", choices=METHODS)
    p.add_argument("--budget", type=budget_seconds, help="wall time: 600, 600s, 10m or 1h")
    p.add_argument("--trials", type=positive_int, help="number of trials (this job's)")
    p.add_argument("--epochs", type=positive_int, help="most epochs of each neural trial")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="fixed")
    p.add_argument("--resume", metavar="STUDY", help="continue this study (its first run id)")
    p.add_argument("--seed", type=non_negative_int, default=42)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--run-id", help="run an already created (queued) tuning job")

    p = command("runs", cmd_runs, "List runs and jobs (every kind unless --kind), newest first.")
    p.add_argument("--dataset")
    p.add_argument("--kind", choices=KINDS, help="only jobs of this kind")
    return parser


def _job_options(p: argparse.ArgumentParser) -> None:
    """Options every scenario job takes (the multiscenario model's seed, epochs, device)."""
    p.add_argument("--seed", type=non_negative_int, default=42)
    p.add_argument("--epochs", type=positive_int, help="epochs of the multiscenario model")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--run-id", help="run an already created (queued) job of this kind")


def budget_seconds(text: str) -> float:
    """An argparse type: a wall-clock budget, '600' or '600s' (seconds), '10m', '1.5h'."""
    match = _BUDGET.fullmatch(text.strip().lower())
    seconds = float(match[1]) * _UNITS[match[2] or "s"] if match else 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time budget; use seconds above 0 (600), 600s, 10m or 1h"
        )
    return seconds


_BUDGET = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)?")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _whole(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {low}; got {text!r}")
    return value
