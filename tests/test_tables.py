"""Tables as shown (issue 16): a missing cell reads "—", never Streamlit's raw "None"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.tables import MISSING, drop_empty, readable


def test_columns_with_gaps_become_formatted_text_the_rest_keep_their_type():
    frame = pd.DataFrame(
        {
            "run": ["a", None],
            "ndcg@10": [0.12345, np.nan],
            "share": [0.25, np.nan],
            "fit_s": [2.5, 13.25],
            "created": pd.to_datetime(["2026-12-07 01:19", None], utc=True),
        }
    )
    config = {
        "ndcg@10": st.column_config.NumberColumn("NDCG@10", format="%.4f", help="Test NDCG@10"),
        "share": st.column_config.NumberColumn("Share", format="percent"),
        "fit_s": st.column_config.NumberColumn("Fit time (s)", format="%.1f"),
        "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
    }
    shown, cfg = readable(frame, config)
    assert shown["ndcg@10"].tolist() == ["0.1235", MISSING]
    assert shown["share"].tolist() == ["25.00%", MISSING]
    assert shown["created"].tolist() == ["2026-12-07 01:19", MISSING]
    assert shown["run"].tolist() == ["a", MISSING]
    assert not shown.isna().any(axis=None)  # nothing left for the grid to paint as "None"
    # a converted column keeps its label and help, right-aligned like a number
    assert cfg["ndcg@10"]["label"] == "NDCG@10" and cfg["ndcg@10"]["help"] == "Test NDCG@10"
    assert cfg["ndcg@10"]["alignment"] == "right"
    assert cfg["ndcg@10"]["type_config"] == {"type": "text"}
    # a column without gaps is left as it was: numbers and their config
    assert shown["fit_s"].tolist() == [2.5, 13.25] and cfg["fit_s"] is config["fit_s"]
    assert "run" not in cfg  # a plain text column needs no config
    assert frame["ndcg@10"].isna().sum() == 1  # the input is not changed


def test_drop_empty_removes_columns_missing_everywhere():
    frame = pd.DataFrame(
        {"run": ["a", "b"], "rmse": [np.nan, np.nan], "mae": [0.5, np.nan], "x": [None, None]}
    )
    assert list(drop_empty(frame).columns) == ["run", "mae"]
    assert list(drop_empty(frame, keep=("x",)).columns) == ["run", "mae", "x"]
