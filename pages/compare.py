"""Compare page: which model is better, for whom, and is the difference real?"""

from __future__ import annotations

import functools

import streamlit as st

from core.eval import compare as C
from core.eval import interest as I
from core.names import export_name
from core.runs.export import export_recs
from core.runs.store import RunStore, workspace_home
from dashboard import cache, interest_panel, selection, shell, tables, widgets
from dashboard import charts_compare as charts
from dashboard import charts_interest as charts_interest
from dashboard import views as V
from dashboard import views_interest as VI
from dashboard.report import html_report
from dashboard.text import md

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
    records = widgets.pick_runs(
        "Runs to compare", finished, key="compare_runs", limit=4, minimum=2, with_score=True,
        too_few="Pick at least two runs to compare.", what="compared",
        help="Finished runs of the active dataset; they must share the split (and its seed).",
    )  # fmt: skip
    if not records:
        return
    # best NDCG@10 first everywhere, so each run keeps one colour and place in every chart
    chosen = C.leaderboard(records, 10)["run_id"].tolist()
    records = sorted(records, key=lambda r: chosen.index(r["run_id"]))
    labels = V.run_labels(records)
    k = selection.choice(
        st.radio, "Cut-off K", KS, key="compare_k", param="k", default=10, horizontal=True
    )
    board = C.leaderboard(records, k)
    groups = V.board_metrics(board.columns, k)
    _leaderboard(board, groups, labels, k)
    metric, baseline = _paired_section(home, records, labels, k)
    _segments(home, chosen, labels, metric)
    _beyond(records, board, groups["beyond"], labels, k)
    with shell.guard("measuring calibration"):
        _calibration(home, store, dataset, chosen, labels, k)
    st.subheader("How similar are the lists?")
    left, _ = st.columns([3, 2])
    overlap = cache.overlap(home, tuple(chosen), k)
    widgets.chart(left, cache.figure(charts.overlap_heatmap, overlap, labels, k))
    _downloads(store, chosen, labels, k, metric, baseline)


def _leaderboard(board, groups: dict, labels: dict, k: int) -> None:
    st.subheader("Leaderboard")
    table = board.assign(run=[labels[r] for r in board["run_id"]])
    # issue 16: one table of every metric ran past the page; the accuracy metrics and the
    # fit time stay in view, the rest (labelled without the K the expander names) fold away
    main, more = V.board_columns(groups)
    metrics = [*groups["accuracy"], *groups["plain"], *groups["beyond"]]
    config = {
        m: st.column_config.NumberColumn(
            V.short_metric_label(m, with_k=m in main), format="%.4f", help=V.metric_label(m)
        )
        for m in metrics
    } | {
        "run": st.column_config.TextColumn("Run"),
        "model": st.column_config.TextColumn("Model"),
        "fit_s": st.column_config.NumberColumn("Fit time (s)", format="%.1f"),
        "run_id": st.column_config.TextColumn("Run id"),
    }
    shown = tables.drop_empty(table[[c for c in main if c in table]])
    rest = tables.drop_empty(table[[c for c in more if c in table]], keep=["run"])
    shown, main_config = tables.readable(shown, config)  # "—": a metric that run did not measure
    rest, rest_config = tables.readable(rest, config)
    st.dataframe(
        shown, hide_index=True, width="stretch", column_config=main_config, key="compare_board"
    )
    with st.expander(f"More columns: other metrics at K={k}, beyond accuracy, run ids"):
        st.dataframe(rest, hide_index=True, width="stretch", column_config=rest_config)
    missing = any(t.isin([tables.MISSING]).any(axis=None) for t in (shown, rest))
    gaps = " — marks a metric that run does not measure." if missing else ""
    st.caption(f"Best NDCG@{k} first; click a column header to sort by another metric.{gaps}")
    widgets.chart(st, cache.figure(charts.accuracy_bars, board, groups["accuracy"], labels))


def _paired_section(home, records: list, labels: dict, k: int) -> tuple[str, str]:
    st.subheader("Is the difference real?")
    st.caption(
        "Each user's metric under one run minus the same user's under the baseline: the mean "
        "difference, a 95% bootstrap confidence interval and a Wilcoxon signed-rank test. "
        "Every run is tested against the same baseline, so the p-values are Holm-corrected "
        "for the number of runs compared (the table also shows each test's own p_value)."
    )
    chosen = [r["run_id"] for r in records]
    left, right = st.columns(2)
    baseline = left.selectbox(
        "Baseline run", chosen, index=chosen.index(V.default_baseline(records)),
        format_func=labels.get, key="compare_baseline",
    )  # fmt: skip
    metrics = [f"{m}@{k}" for m in V.ACCURACY] + ["auc"]
    metric = right.selectbox("Metric", metrics, format_func=V.metric_label, key="compare_metric")
    paired = cache.paired(home, tuple(r for r in chosen if r != baseline), metric, baseline)
    for row in paired.to_dict("records"):
        sentence = V.paired_sentence(row, labels[row["run_id"]], labels[baseline])
        (st.success if row["significant"] else st.info)(sentence)
    widgets.chart(st, cache.figure(charts.forest, paired, labels, baseline))
    with st.expander("Paired test table"):
        table = paired.assign(run=[labels[r] for r in paired["run_id"]])
        shown, config = tables.readable(table.drop(columns=["run_id", "baseline"]), {})
        st.dataframe(shown, hide_index=True, width="stretch", column_config=config)
    return metric, baseline


def _segments(home, chosen: list[str], labels: dict, metric: str) -> None:
    st.subheader("For whom?")
    table = cache.segments(home, tuple(chosen), metric)
    kinds = [k for k in V.SEGMENT_KINDS if k in set(table["segment_kind"])]
    st.caption(
        f"Mean {V.metric_label(metric)} per group of test users. Cold users know at most 5 "
        "items; a user's scenario is where most of their test interactions happened."
    )
    sentences = {k: V.one_group_sentence(table, k) for k in kinds}  # one group: no chart
    drawn = [k for k in kinds if sentences[k] is None]
    cols = st.columns([3, 2, 2][: max(2, len(drawn))]) if drawn else []  # one: not full width
    for col, kind in zip(cols, drawn, strict=False):
        fig = cache.figure(charts.segment_bars, table, kind, chosen, labels, metric)
        widgets.chart(col, fig)
    for sentence in filter(None, sentences.values()):
        st.caption(md(sentence))  # a segment name may come from the data: shown as written


def _beyond(records: list, board, beyond: list[str], labels: dict, k: int) -> None:
    st.subheader("Beyond accuracy")
    left, right = st.columns([3, 2])
    if beyond:
        title = f"Catalogue coverage, novelty, diversity and popularity bias at K={k}"
        widgets.chart(left, cache.figure(charts.metric_panels, board, beyond, labels, title))
    points = C.accuracy_novelty(records, k)
    if f"novelty@{k}" in points:
        scatter = cache.figure(charts.accuracy_scatter, points, labels, f"novelty@{k}", f"ndcg@{k}")
        widgets.chart(right, scatter)
    st.caption(
        "Coverage: share of the catalogue recommended to anyone. Novelty: mean self-information "
        "of recommended items (higher = less popular). Diversity: how different the items of "
        "one list are. Avg popularity and long-tail share measure popularity bias; Gini, how "
        "unevenly recommendations are spread over items."
    )


def _calibration(home, store, dataset: str, chosen: list[str], labels: dict, k: int) -> None:
    st.subheader("Do the lists match the users' interests?")
    usable, notes = VI.usable_runs(store, dataset, chosen)
    for note in notes:
        st.caption(md(note))
    if not usable:
        return
    recent = st.columns([1, 3])[0].number_input(
        "Recent window (interactions)", min_value=1, max_value=interest_panel.MAX_WINDOW,
        value=I.RECENT, step=1, key="compare_recent",
        help="How many of each user's newest known interactions count as recent interests.",
    )  # fmt: skip
    try:
        table, ref = interest_panel.calibration(home, [r["run_id"] for r in usable], k, recent)
    except I.NoCategoriesError as err:
        st.info(str(err))
        return
    config = {
        "run": st.column_config.TextColumn("Run"),
        "kl_held_out": st.column_config.NumberColumn("KL to held-out ↓", format="%.3f"),
        "kl_history": st.column_config.NumberColumn("KL to history ↓", format="%.3f"),
        "closer_recent": st.column_config.NumberColumn("Closer to recent", format="percent"),
        "closer_long_term": st.column_config.NumberColumn("Closer to long-term", format="percent"),
        "n_users": st.column_config.NumberColumn("Users", format="localized"),
    }
    st.dataframe(
        VI.calibration_view(table, labels), hide_index=True, width="stretch",
        column_config=config, key="compare_calibration",
    )  # fmt: skip
    left, right = st.columns([3, 2])
    widgets.chart(left, cache.figure(charts_interest.calibration_bars, table, labels, k))
    right.caption(VI.calibration_caption(k))
    right.caption(VI.reference_sentence(ref, recent))


def _downloads(store, chosen: list[str], labels: dict, k: int, metric: str, baseline: str) -> None:
    st.subheader("Download")
    left, mid, right = st.columns(3, vertical_alignment="bottom")
    run_id = left.selectbox(
        "Recommendations of", chosen, format_func=labels.get, key="compare_export_run"
    )
    for col, fmt, mime in (
        (mid, "csv", "text/csv"),
        (right, "parquet", "application/octet-stream"),
    ):
        col.download_button(
            f"Recommendations ({fmt.upper()})", key=f"compare_dl_{fmt}", mime=mime,
            data=functools.partial(export_recs, store, run_id, fmt), on_click="ignore",
            file_name=export_name(run_id, "recommendations", fmt),  # checked: no '/', '..'
        )  # fmt: skip
    st.download_button(
        "Comparison report (HTML, opens offline)", key="compare_dl_html", type="primary",
        data=functools.partial(html_report, store, chosen, k, metric, baseline),
        file_name=f"recscope-comparison-k{k}.html", mime="text/html", on_click="ignore",
    )  # fmt: skip
