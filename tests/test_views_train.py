"""dashboard.views_train: the Train page's device note, parameter text, progress and results."""

from __future__ import annotations

import pytest

from dashboard import views_train as VT


def test_device_note():
    gpu = {"type": "cuda", "name": "NVIDIA H200", "memory_gb": 139.8}
    assert VT.device_note(gpu) == (True, "Neural models train on the GPU: NVIDIA H200 (139.8 GB).")
    on_gpu, text = VT.device_note({"type": "cpu", "name": "CPU"})
    assert not on_gpu and text.startswith("No GPU found: models train on the CPU.")


@pytest.mark.parametrize("text, value", [("250", 250.0), ("1e-3", 0.001), (" auto ", "auto")])
def test_param_value_reads_numbers_as_numbers(text, value):
    assert VT.param_value(text) == value


def _summary(**kw) -> dict:
    base = {"epoch": 3, "epochs": 20, "loss": None, "best_metric": None, "eta_s": None}
    return {"metric_name": "ndcg@10", **base, **kw}


def test_progress_text_per_status():
    assert VT.progress_text({"status": "queued"}, _summary()) == "Queued — waiting to start."
    queued = {"status": "queued", "message": "Waiting for the GPU (1 job ahead)."}
    assert VT.progress_text(queued, _summary()) == "Waiting for the GPU (1 job ahead)."
    done = {"status": "finished", "timings": {"fit_s": 12.34}}
    assert VT.progress_text(done, _summary()) == "Finished in 12.3 s of training."
    assert VT.progress_text({"status": "finished"}, _summary()) == "Finished."
    assert VT.progress_text({"status": "cancelled"}, _summary()) == "Cancelled."
    running = _summary(loss=0.51234, best_metric=0.1234, eta_s=41.6, eta_max_s=41.6)
    assert VT.progress_text({"status": "running"}, running) == (
        "Epoch 3 of at most 20 · loss 0.5123 · best validation ndcg@10 0.1234 · "
        "about 42 s left, estimated from 3 epochs"
    )
    cancelling = {"status": "running", "cancel_requested": True}
    assert VT.progress_text(cancelling, running) == "Cancelling — it stops at the next batch."
    assert VT.progress_text({"status": "running"}, _summary(epochs=None)) == "Fitting"
    starting = _summary(epoch=0, epochs=12)
    assert VT.progress_text({"status": "running"}, starting) == "First epoch under way (at most 12)"


def test_results_table_has_the_headline_metrics():
    records = [
        {
            "model": "ease",
            "run_id": "r1",
            "metrics": {"test": {"ndcg@10": 0.3, "recall@10": 0.5}},
            "timings": {"fit_s": 1.5},
        },
        {"model": "pop", "run_id": "r2"},
    ]
    table = VT.results_table(records)
    assert list(table.columns) == ["model", "run", *VT.HEADLINE, "fit (s)"]
    assert table.loc[0, ["model", "run", "ndcg@10", "fit (s)"]].tolist() == ["ease", "r1", 0.3, 1.5]
    assert table.loc[1, ["hit@10", "fit (s)"]].isna().all()


def test_all_gpus_is_offered_only_past_one_gpu():
    assert VT.all_gpus_label(0) is None and VT.all_gpus_label(1) is None
    assert VT.all_gpus_label(4) == (
        "All 4 GPUs: one process per GPU (torchrun), for the neural models"
    )


def test_progress_text_of_a_run_on_several_processes():
    running = {"status": "running", "nproc": 2}
    assert VT.progress_text(running, _summary(loss=0.5)) == (
        "Epoch 3 of at most 20 · on 2 processes · loss 0.5000"
    )
    done = {"status": "finished", "timings": {"fit_s": 3.25}, "distributed": {"world_size": 2}}
    assert VT.progress_text(done, _summary()) == "Finished in 3.2 s of training on 2 processes."
    one = {"status": "finished", "timings": {"fit_s": 3.25}, "distributed": {"world_size": 1}}
    assert VT.progress_text(one, _summary()) == "Finished in 3.2 s of training."
