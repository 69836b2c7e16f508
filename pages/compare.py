"""Compare page: which model is better, for whom, and is the difference real?"""

from __future__ import annotations

import functools

import streamlit as st

from core.errors import RecScopeError
from core.eval import compare as C
from core.runs.export import export_recs
from core.runs.store import RunStore, workspace_home
from dashboard import cache, shell
from dashboard import charts_compare as charts
from dashboard import views as V
from dashboard.report import html_report

KS = (5, 10, 20)
NO_DATASET = "No dataset yet — add one on the Data page, then train at least two models."


def render() -> None:
    st.title("Compare runs")
    st.caption(
        "Runs trained on the same dataset and split, measured on the test split with full "
        "ranking over all items (each user's training and validation items excluded)."
    )
    home = workspace_home()
    dataset = shell.active_dataset()
    if not dataset:
        st.info(NO_DATASET)
        return
    store = RunStore(home)
    finished = [r for r in store.list(dataset) if r.get("status") == "finished"]
    if len(finished) < 2:
        st.info(
            f"Comparing needs at least two finished runs on '{dataset}'; there "
            f"{'is' if len(finished) == 1 else 'are'} {len(finished)}. Train more models on "
            "the Train page."
        )
        return
    by_id = {r["run_id"]: r for r in finished}
    chosen = st.multiselect(
        "Runs to compare",
        list(by_id),
        default=_default_runs(finished),
        format_func=lambda r: _option(by_id[r]),
        key="compare_runs",
        help="Finished runs of the active dataset; they must share the split (and its seed).",
    )
    if len(chosen) < 2:
        st.info("Pick at least two runs to compare.")
        return
    try:
        C.check_comparable([by_id[r] for r in chosen])
    except RecScopeError as err:
        st.warning(f"These runs cannot be compared: {err}")
        return
    # best NDCG@10 first everywhere, so each run keeps one colour and place in every chart
    chosen = C.leaderboard([by_id[r] for r in chosen], 10)["run_id"].tolist()
    records = [by_id[r] for r in chosen]
    labels = V.run_labels(records)
    k = st.radio("Cut-off K", KS, index=1, horizontal=True, key="compare_k")
    _leaderboard(records, labels, k)
    metric, baseline = _paired_section(home, chosen, records, labels, k)
    _segments(home, chosen, labels, metric)
    _beyond(records, labels, k)
    _overlap(home, chosen, labels, k)
    _downloads(store, chosen, labels, k, metric, baseline)


def _leaderboard(records: list[dict], labels: dict, k: int) -> None:
    st.subheader("Leaderboard")
    board = C.leaderboard(records, k)
    table = board.assign(run=[labels[r] for r in board["run_id"]])
    accuracy = [f"{m}@{k}" for m in V.ACCURACY if f"{m}@{k}" in board]
    plain = [m for m in C.PLAIN_METRICS if m in board]
    beyond = [f"{m}@{k}" for m in V.BEYOND if f"{m}@{k}" in board]
    columns = ["run", "model", *accuracy, *plain, *beyond, "fit_s", "run_id"]
    config = {m: st.column_config.NumberColumn(V.metric_label(m), format="%.4f") for m in columns}
    config.update(
        {
            "run": st.column_config.TextColumn("Run"),
            "model": st.column_config.TextColumn("Model"),
            "fit_s": st.column_config.NumberColumn("Fit time (s)", format="%.1f"),
            "run_id": st.column_config.TextColumn("Run id"),
        }
    )
    st.dataframe(
        table[[c for c in columns if c in table]],
        hide_index=True,
        width="stretch",
        column_config=config,
        key="compare_board",
    )
    st.caption(f"Best NDCG@{k} first; click a column header to sort by another metric.")
    st.plotly_chart(charts.accuracy_bars(board, accuracy, labels), width="stretch")


def _paired_section(
    home, chosen: list[str], records: list[dict], labels: dict, k: int
) -> tuple[str, str]:
    st.subheader("Is the difference real?")
    st.caption(
        "Each user's metric under one run minus the same user's under the baseline: the mean "
        "difference, a 95% bootstrap confidence interval and a Wilcoxon signed-rank test."
    )
    left, right = st.columns(2)
    pop = next((r["run_id"] for r in records if r.get("model") == "pop"), chosen[0])
    baseline = left.selectbox(
        "Baseline run",
        chosen,
        index=chosen.index(pop),
        format_func=lambda r: labels[r],
        key="compare_baseline",
    )
    metrics = [f"{m}@{k}" for m in V.ACCURACY] + ["auc"]
    metric = right.selectbox("Metric", metrics, format_func=V.metric_label, key="compare_metric")
    others = tuple(r for r in chosen if r != baseline)
    paired = cache.paired(home, others, metric, baseline)
    for row in paired.to_dict("records"):
        sentence = V.paired_sentence(row, labels[row["run_id"]], labels[baseline])
        (st.success if row["significant"] else st.info)(sentence)
    st.plotly_chart(charts.forest(paired, labels, baseline), width="stretch")
    with st.expander("Paired test table"):
        st.dataframe(
            paired.assign(run=[labels[r] for r in paired["run_id"]]).drop(
                columns=["run_id", "baseline"]
            ),
            hide_index=True,
            width="stretch",
        )
    return metric, baseline


def _segments(home, chosen: list[str], labels: dict, metric: str) -> None:
    st.subheader("For whom?")
    table = cache.segments(home, tuple(chosen), metric)
    kinds = [k for k in V.SEGMENT_KINDS if k in set(table["segment_kind"])]
    st.caption(
        f"Mean {V.metric_label(metric)} per group of test users. Cold users know at most 5 "
        "items; a user's scenario is where most of their test interactions happened."
    )
    cols = st.columns([3, 2, 2][: len(kinds)]) if kinds else []
    for col, kind in zip(cols, kinds, strict=True):
        col.plotly_chart(charts.segment_bars(table, kind, chosen, labels, metric), width="stretch")


def _beyond(records: list[dict], labels: dict, k: int) -> None:
    st.subheader("Beyond accuracy")
    board = C.leaderboard(records, k)
    beyond = [f"{m}@{k}" for m in V.BEYOND if f"{m}@{k}" in board]
    left, right = st.columns([3, 2])
    if beyond:
        title = f"Catalogue coverage, novelty, diversity and popularity bias at K={k}"
        left.plotly_chart(charts.metric_panels(board, beyond, labels, title), width="stretch")
    points = C.accuracy_novelty(records, k)
    if f"novelty@{k}" in points:
        right.plotly_chart(
            charts.accuracy_scatter(points, labels, f"novelty@{k}", f"ndcg@{k}"), width="stretch"
        )
    st.caption(
        "Coverage: share of the catalogue recommended to anyone. Novelty: mean self-information "
        "of recommended items (higher = less popular). Diversity: how different the items of "
        "one list are. Avg popularity and long-tail share measure popularity bias; Gini, how "
        "unevenly recommendations are spread over items."
    )


def _overlap(home, chosen: list[str], labels: dict, k: int) -> None:
    st.subheader("How similar are the lists?")
    table = cache.overlap(home, tuple(chosen), k)
    left, _ = st.columns([3, 2])
    left.plotly_chart(charts.overlap_heatmap(table, labels, k), width="stretch")


def _downloads(store, chosen: list[str], labels: dict, k: int, metric: str, baseline: str) -> None:
    st.subheader("Download")
    left, mid, right = st.columns(3, vertical_alignment="bottom")
    run_id = left.selectbox(
        "Recommendations of", chosen, format_func=lambda r: labels[r], key="compare_export_run"
    )
    for col, fmt, mime in (
        (mid, "csv", "text/csv"),
        (right, "parquet", "application/octet-stream"),
    ):
        col.download_button(
            f"Recommendations ({fmt.upper()})",
            data=functools.partial(export_recs, store, run_id, fmt),
            file_name=f"{run_id}-recommendations.{fmt}",
            mime=mime,
            on_click="ignore",
            key=f"compare_dl_{fmt}",
        )
    st.download_button(
        "Comparison report (HTML, opens offline)",
        data=functools.partial(html_report, store, chosen, k, metric, baseline),
        file_name=f"recscope-comparison-k{k}.html",
        mime="text/html",
        on_click="ignore",
        key="compare_dl_html",
        type="primary",
    )


def _default_runs(finished: list[dict]) -> list[str]:
    """The newest run of each model (up to 4) on the newest run's split."""
    newest = finished[0]
    picked: dict[str, str] = {}
    for rec in finished:
        same = (rec.get("split"), rec.get("seed")) == (newest.get("split"), newest.get("seed"))
        if same and rec.get("model") not in picked and len(picked) < 4:
            picked[rec.get("model")] = rec["run_id"]
    return list(picked.values())


def _option(rec: dict) -> str:
    ndcg = (rec.get("metrics") or {}).get("test", {}).get("ndcg@10")
    score = f" · NDCG@10 {ndcg:.3f}" if isinstance(ndcg, (int, float)) else ""
    return f"{rec.get('model')} · {rec['run_id']} ({rec.get('split')} split){score}"
