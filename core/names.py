"""Every name that reaches the file system is checked here, in one place.

A name a person typed or a file supplied (a dataset name, a run id, a job kind, an export
file name) becomes at most one path component, and only after it passed its rule: a
`re.fullmatch` over a short alphabet without separators, so '..', '/', NUL, a trailing
newline or a 300-character name is refused with one sentence that states the rule. Free
text from the data (a scenario name, a title) never becomes a path at all: the files of a
run or a dataset have fixed names, and a scenario name is only a value inside them.

Messages quote the name as `shown` writes it: control characters escaped and long names
cut, so a refusal stays one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.errors import RecScopeError

DATASET_MAX = 64
RUN_ID_MAX = 128
_DATASET = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{DATASET_MAX - 1}}}")
_RUN_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{RUN_ID_MAX - 1}}}")
_EXPORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,150}\.[a-z]{2,8}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
DATASET_RULE = (
    f"use 1-{DATASET_MAX} letters, digits, '_', '-' or '.', starting with a letter or digit"
)


def check_dataset_name(name: object) -> str:
    """`name` if it can name a dataset folder, else one sentence with the rule."""
    if not isinstance(name, str) or not _DATASET.fullmatch(name):
        raise RecScopeError(
            f"The name '{shown(name)}' cannot be used for a dataset; {DATASET_RULE}."
        )
    return name


def is_dataset_name(name: object) -> bool:
    """True if `name` passes `check_dataset_name` (for listings that skip other folders)."""
    return isinstance(name, str) and _DATASET.fullmatch(name) is not None


def dataset_name_from(text: str, default: str = "dataset") -> str:
    """A valid dataset name made from free text (a file name): 'my upload' -> 'my-upload'."""
    name = _UNSAFE.sub("-", str(text)).lstrip("-_.")[:DATASET_MAX].rstrip("-")
    return name if is_dataset_name(name) else default


def numbered(base: str, n: int) -> str:
    """`base` with the suffix '-n' (n >= 2), shortened so the result is a valid name."""
    suffix = f"-{n}"
    return check_dataset_name(base[: DATASET_MAX - len(suffix)].rstrip("-_.") + suffix)


def is_run_id(text: object) -> bool:
    """True if `text` can name a run folder (what `check_run_id` accepts)."""
    return isinstance(text, str) and _RUN_ID.fullmatch(text) is not None and ".." not in text


def check_run_id(run_id: object) -> str:
    """`run_id` if it can name a run folder (no separators, no '..'), else a clear error."""
    if not is_run_id(run_id):
        raise RecScopeError(
            f"'{shown(run_id)}' is not a run id; run ids are letters, digits, '_', '-' and "
            "'.' as `recscope runs` lists them."
        )
    return run_id


def check_kind(kind: object, kinds: Iterable[str]) -> str:
    """`kind` if it is one of `kinds` (job kinds pick a command and a file, never a path)."""
    kinds = tuple(kinds)
    if kind not in kinds:
        raise RecScopeError(f"Job kind '{shown(kind)}' is unknown; use one of {', '.join(kinds)}.")
    return str(kind)


def export_name(run_id: str, what: str, ext: str) -> str:
    """The download file name of a run's export: '<run_id>-<what>.<ext>', checked."""
    name = f"{check_run_id(run_id)}-{_UNSAFE.sub('-', what).strip('-.') or 'export'}.{ext}"
    if not _EXPORT.fullmatch(name):
        raise RecScopeError(
            f"'{shown(name)}' cannot be used as an export file name; use letters, digits, "
            "'_', '-' and '.' with a short lower-case extension."
        )
    return name


def shown(value: object, limit: int = 40) -> str:
    """`value` as a message quotes it: control characters escaped, cut to `limit` chars."""
    text = "" if value is None else str(value)
    cut = len(text) > limit
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return text + ("…" if cut else "")
