"""Tables as shown: a missing value reads "—", never Streamlit's raw "None".

Streamlit's grid paints every missing cell (None, NaN, NaT) as a grey "None", whatever the
column's format or a Styler's `na_rep`. So a column that has missing cells is shown as text:
its numbers formatted as its column config says, its gaps as MISSING, right-aligned like a
number column (the grid's sort still orders numeric text as numbers). Columns without gaps
keep their type and config. Pure pandas over column-config dicts, no Streamlit calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

MISSING = "—"
#: Streamlit's moment.js datetime tokens -> strftime, for the formats the pages use
_DATE_TOKENS = (("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"), ("mm", "%M"))


def readable(frame: pd.DataFrame, config: Mapping[str, dict]) -> tuple[pd.DataFrame, dict]:
    """(`frame`, `config`) with every column that has a missing cell turned into text.

    `config` maps column -> `st.column_config.*` (plain dicts); a converted column keeps its
    label and help but becomes a right-aligned text column. Text columns' gaps read MISSING.
    """
    out, config = frame.copy(), dict(config)
    for col in out.columns:
        gaps = out[col].isna()
        if not gaps.any():
            continue
        spec = dict(config.get(col) or {"label": col})
        kind = (spec.get("type_config") or {}).get("type")
        fmt = (spec.get("type_config") or {}).get("format")
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].map(lambda v, f=fmt: MISSING if pd.isna(v) else _date(v, f))
        elif pd.api.types.is_numeric_dtype(out[col]) or kind == "number":
            out[col] = out[col].map(lambda v, f=fmt: MISSING if pd.isna(v) else _number(v, f))
        else:
            out[col] = out[col].astype(object).where(~gaps, MISSING)
            if kind in (None, "text"):
                continue
        config[col] = _text_column(spec)
    return out, config


def drop_empty(frame: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """`frame` without the columns that are missing in every row (a metric no run measured,
    scenario columns of data without scenarios); columns in `keep` always stay."""
    kept = set(keep)
    empty = [c for c in frame.columns if c not in kept and frame[c].isna().all()]
    return frame.drop(columns=empty)


# -- helpers ---------------------------------------------------------------------------------


def _text_column(spec: Mapping) -> dict:
    """A right-aligned text column with the label, help and width of `spec`."""
    return {
        "label": spec.get("label"),
        "help": spec.get("help"),
        "width": spec.get("width"),
        "alignment": "right",
        "type_config": {"type": "text"},
    }


def _number(value, fmt: str | None) -> str:
    """A number as the column config's format would show it ('%.4f', 'percent', …)."""
    value = float(value)
    if fmt in (None, "", "plain"):
        return f"{value:g}"
    if fmt == "localized":
        return f"{value:,.0f}" if value.is_integer() else f"{value:,}"
    if fmt == "percent":
        return f"{value:.2%}"
    try:
        return fmt % value
    except (TypeError, ValueError):
        return f"{value:g}"


def _date(value, fmt: str | None) -> str:
    for token, code in _DATE_TOKENS:
        fmt = (fmt or "YYYY-MM-DD HH:mm").replace(token, code)
    return pd.Timestamp(value).strftime(fmt)
