"""Text timestamps for ingest: one format for the whole column, never guessed row by row.

Reading each value on its own (pandas ``format="mixed"``) turns ``31/05/2024, 01/06/2024,
02/06/2024`` into 31 May, 6 January and 6 February. Here a column is read with the one
format that fits every value:

- a column of numbers (one bad value aside) is unix time, and the bad value is named;
- ``date_format`` given: that format (refused up front when it is not a valid strftime
  format or holds no code at all, e.g. ``%Q``, ``%`` or ``abc``), and the first value that
  does not fit it is named;
- otherwise the known formats that fit every value: ISO 8601 first; when both day-first and
  month-first fit and some value reads differently under the two, the column is refused
  with both readings of it and the ``--date-format`` hint; when only one order fits it is
  used and noted;
- no format fits every value: the one that fits most, and the first value it does not fit
  is named (never a valid value).

Parsing runs on the distinct values (`pd.factorize`), so a long column costs its
distinct dates, not its rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from core.errors import IngestError

_TIMES = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
_TWINS = [(f"%d{s}%m{s}{y}", f"%m{s}%d{s}{y}") for s in "/-." for y in ("%Y", "%y")]
_OTHERS = ("%Y/%m/%d", "%Y.%m.%d", "%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%b %d %Y",
           "%b %d, %Y", "%B %d %Y", "%B %d, %Y", "%d-%b-%y")  # fmt: skip
# (format, its day/month twin or None), ISO 8601 first.
CANDIDATES: list[tuple[str, str | None]] = [("ISO8601", None)]
for _time in _TIMES:
    for _day, _month in _TWINS:
        CANDIDATES += [(_day + _time, _month + _time), (_month + _time, _day + _time)]
    CANDIDATES += [(_other + _time, None) for _other in _OTHERS]
_SAMPLE = 64
FORMAT_HINT = "use strftime codes such as %d/%m/%Y"


def check_date_format(date_format: str, *, file: str, column: str) -> None:
    """Refuse a `date_format` no value could fit: a bad or stray code, or no code at all.

    Run before the read, so a typing slip is one sentence, not a failure on every row (or,
    from pandas, a ValueError). pandas' own readings ``ISO8601`` and ``mixed`` hold no
    code and are refused too: ``mixed`` would guess row by row.
    """
    reason = _format_problem(date_format)
    if reason is not None:
        raise IngestError(
            f"the date format '{date_format}' is not valid ({reason})",
            file=file,
            column=column,
            hint=FORMAT_HINT,
        )


def _format_problem(date_format: str) -> str | None:
    codes = 0
    at = 0
    while (at := date_format.find("%", at)) >= 0:
        code = date_format[at : at + 2]
        if len(code) < 2:
            return "it ends with a lone %"
        if code != "%%":
            try:
                _parse(pd.Series(["x"], dtype=object), code)
            except ValueError:
                return f"{code} is not a strftime code"
            codes += 1
        at += 2
    if codes == 0:
        return "it holds no strftime code"
    try:
        _parse(pd.Series(["x"], dtype=object), date_format)
    except ValueError as err:  # a combination pandas refuses
        return str(err).rstrip(".")
    return None


def parse_text_dates(
    series: pd.Series,
    *,
    file: str,
    column: str,
    line: Callable[[int], int],
    date_format: str | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Unix seconds (int64), a missing mask and a note for a column of text timestamps.

    `series` holds stripped strings (None/NaN/'' for missing); `line` maps a 0-based row to
    the line a person counts, for the errors.
    """
    codes, uniques = pd.factorize(series.where(series != ""), use_na_sentinel=True)
    uniques = pd.Series(uniques, dtype=object)

    def refuse(index: int, problem: str, hint: str) -> None:
        row = int(np.flatnonzero(codes == index)[0])
        raise IngestError(problem, file=file, row=line(row), column=column, hint=hint)

    if date_format is not None:
        check_date_format(date_format, file=file, column=column)
        parsed = _parse(uniques, date_format)
        if parsed.isna().any():
            bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            refuse(
                bad,
                f"the timestamp '{uniques[bad]}' does not fit the date format {date_format}",
                "every value of the column must be written in that one format; fix or "
                "remove the line, or give another --date-format",
            )
        return _seconds(parsed, codes) + (
            f"Dates in column '{column}' were read with the format {date_format}, as UTC.",
        )
    numbers = pd.to_numeric(uniques, errors="coerce")
    if len(uniques) and numbers.notna().mean() >= 0.5:
        bad = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        refuse(
            bad,
            f"the timestamp '{uniques[bad]}' is not a number like the other values",
            "the column holds unix times (seconds since 1970); fix or remove the line",
        )
    tried: dict[str, pd.Series] = {}  # full parses, kept: a long column costs each once
    fitting = _fitting(uniques, tried)
    if not fitting:
        _refuse_misfit(uniques, refuse)
    chosen, twin = fitting[0]
    shown = "ISO 8601" if chosen == "ISO8601" else chosen
    note = f"Dates in column '{column}' were read with the format {shown}, as UTC."
    parsed = tried.get(chosen)
    if parsed is None:
        parsed = _parse(uniques, chosen)
    if twin is not None:
        if any(fmt == twin for fmt, _ in fitting):
            other = tried[twin] if twin in tried else _parse(uniques, twin)
            differ = np.flatnonzero((parsed != other).to_numpy())
            if len(differ):
                value = uniques[int(differ[0])]
                day, month = (chosen, twin) if chosen.startswith("%d") else (twin, chosen)
                first, second = (
                    _spoken(_parse(uniques[[differ[0]]], day).iloc[0]),
                    _spoken(_parse(uniques[[differ[0]]], month).iloc[0]),
                )
                refuse(
                    int(differ[0]),
                    f"the dates fit both day-first and month-first: '{value}' reads as "
                    f"{first} or as {second}",
                    f"say which with {_flag(day)} (day first) or {_flag(month)} (month first)",
                )
        else:
            order = "day first" if chosen.startswith("%d") else "month first"
            other = tried[twin] if twin in tried else _parse(uniques, twin)
            misfit = uniques[int(np.flatnonzero(other.isna().to_numpy())[0])]
            note = (
                f"Dates in column '{column}' were read {order} ({chosen}), as UTC: the other "
                f"order does not fit '{misfit}'."
            )
    return _seconds(parsed, codes) + (note,)


# ---------------------------------------------------------------------------- helpers


def _parse(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values, format=fmt, errors="coerce", utc=True)


def _fitting(uniques: pd.Series, tried: dict) -> list[tuple[str, str | None]]:
    """The candidates that read every distinct value (tried on a sample first).

    The parses of every value are left in `tried` (format -> parsed), fitting or not.
    """
    sample = uniques[:_SAMPLE]
    survivors = []
    for fmt, twin in CANDIDATES:
        parsed = _parse(sample, fmt)
        if parsed.notna().all():
            survivors.append((fmt, twin))
            if len(uniques) <= _SAMPLE:
                tried[fmt] = parsed
    if len(uniques) > _SAMPLE:
        for fmt, _ in survivors:
            tried[fmt] = _parse(uniques, fmt)
    return [(fmt, twin) for fmt, twin in survivors if tried[fmt].notna().all()]


def _refuse_misfit(uniques: pd.Series, refuse: Callable) -> None:
    """Name the first value that the most-fitting format does not read."""
    sample = uniques[: _SAMPLE * 4]
    counts = [(int(_parse(sample, fmt).notna().sum()), fmt) for fmt, _ in CANDIDATES]
    best, fmt = max(counts, key=lambda c: c[0])
    if best == 0:
        refuse(
            0,
            f"the timestamp '{uniques[0]}' is neither a number nor a date",
            "use unix seconds or dates like 2024-05-31 12:00:00; fix or remove the line",
        )
    parsed = _parse(uniques, fmt)
    bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
    good = uniques[int(np.flatnonzero(parsed.notna().to_numpy())[0])]
    shown = "ISO 8601" if fmt == "ISO8601" else fmt
    refuse(
        bad,
        f"the timestamp '{uniques[bad]}' is not written like the other dates of the column "
        f"({shown}, e.g. '{good}')",
        "write every date in one format, or give the format with --date-format",
    )


def _seconds(parsed: pd.Series, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    secs = parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    missing = codes < 0
    return np.where(missing, 0, secs[np.maximum(codes, 0)] if len(secs) else 0), missing


def _spoken(stamp: pd.Timestamp) -> str:
    return f"{stamp.day} {stamp:%B %Y}"


def _flag(fmt: str) -> str:
    return f"--date-format '{fmt}'" if " " in fmt else f"--date-format {fmt}"
