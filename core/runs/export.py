"""A run's stored recommendations as a readable table, and as CSV or Parquet bytes.

Data export, not presentation: the CLI and the Compare page's download buttons share it.
CSV cells that a spreadsheet would run as a formula (leading '=', '+', '-', '@', tab or
carriage return) are written with a leading apostrophe, so an item title such as
'=HYPERLINK(…)' stays text; Parquet keeps every value unchanged.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.data import schema as S
from core.errors import ParameterError
from core.runs.pipeline import run_dataset

FORMATS = ("csv", "parquet")
#: first characters that make Excel, LibreOffice or Sheets evaluate a cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def recs_table(store, run_id: str, k: int | None = None) -> pd.DataFrame:
    """Every user's stored recommendations: user_id, rank, item_id, title, score."""
    record = store.read(run_id)
    recs = pd.read_parquet(store.folder(run_id) / "recs.parquet")
    if k is not None:
        recs = recs[recs["rank"] <= int(k)]
    ds = run_dataset(store, record)  # refuses a dataset replaced since the run
    items = recs[S.ITEM].to_numpy()
    table = pd.DataFrame(
        {
            S.USER_ID: ds.user_ids[recs[S.USER].to_numpy()],
            "rank": recs["rank"].to_numpy(dtype=np.int64),
            S.ITEM_ID: ds.item_ids[items],
            S.TITLE: ds.item_titles()[items],
            "score": recs["score"].to_numpy(dtype=np.float64),
        }
    )
    return table.sort_values([S.USER_ID, "rank"], kind="stable").reset_index(drop=True)


def export_recs(store, run_id: str, fmt: str = "csv", k: int | None = None) -> bytes:
    """`recs_table` as CSV (UTF-8, header, formula cells neutralised) or Parquet bytes."""
    if fmt not in FORMATS:
        raise ParameterError(f"Export format '{fmt}' is unknown; use one of {', '.join(FORMATS)}.")
    table = recs_table(store, run_id, k)
    if fmt == "csv":
        return neutralise_formulas(table).to_csv(index=False).encode("utf-8")
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting like a formula get a leading apostrophe (OWASP).

    Only text columns change; numbers (a negative score) stay numbers.
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype != object and not pd.api.types.is_string_dtype(out[column]):
            continue
        out[column] = [
            f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v
            for v in out[column].astype(object)
        ]
    return out
