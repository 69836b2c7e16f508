"""Issue 11, "runs that cannot lie": real processes killed, cancelled and raced.

Probes: a CLI-started run killed with -9 says "failed" in `recscope runs`; Cancel stops a
CLI-started run's process (and not the shell's group); two writers never lose a key of
run.json; a cancel racing a job's final write never erases its metrics; a reused pid is
not mistaken for the job; unreadable records are listed, not dropped; a full disk fails
the run with one sentence; stale temp files are swept.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.cli import main
from core.errors import RecScopeError
from core.runs import jobs, liveness
from core.runs.store import RunStore
from core.storage import read_json

ROOT = Path(__file__).resolve().parents[2]
#: long enough never to finish while a test kills or cancels it
LONG = ["--epochs", "100000", "--param", "patience=1000000", "--param", "dim=8"]


@pytest.fixture
def dataset(home, tmp_path) -> str:
    """A tiny CSV (60 users x 40 items) ingested through the CLI as 'tiny'."""
    lines = ["user_id,item_id,timestamp"]
    for u in range(60):
        block = 0 if u < 30 else 20
        for t in range(8):
            lines.append(f"u{u},i{block + (u * 7 + t * 3) % 20},{1_000 + u * 10 + t}")
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    assert main(["ingest", str(path), "--name", "tiny", "--json"]) == 0
    return "tiny"


def _train_process(home: Path, *extra: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "core.cli", "train", "--dataset", "tiny", "--model", "bpr"]
    env = {**os.environ, "RECSCOPE_HOME": str(home)}
    return subprocess.Popen(
        [*command, "--device", "cpu", *LONG, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )


def _wait_running(store: RunStore, timeout: float = 25) -> dict:
    """The one run once it is running and has written a progress line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.list()
        if runs and runs[0]["status"] == "running" and store.progress(runs[0]["run_id"]):
            return runs[0]
        time.sleep(0.1)
    pytest.fail(f"no running run within {timeout} s: {store.list()}")


def _runs_json(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["runs"]


def test_kill_9_of_a_cli_run_reads_as_failed_with_its_last_log_line(home, dataset, capsys):
    store = RunStore(home)
    proc = _train_process(home)
    try:
        record = _wait_running(store)
        assert record["pid"] == proc.pid and record["host"] == liveness.host_name()
        assert record["pid_start"] == liveness.process_start(proc.pid)
        assert record["heartbeat_at"]
        assert _runs_json(capsys)[0]["status"] == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    (run,) = _runs_json(capsys)
    assert run["status"] == "failed"
    assert re.fullmatch(
        r"The training process stopped unexpectedly: epoch \d+/100000  loss [0-9.]+  "
        r"valid ndcg@10 [0-9.]+",
        run["error"],
    ), run["error"]
    assert store.read(run["run_id"])["status"] == "failed"  # written, not only shown


def test_cancel_stops_a_cli_run_and_spares_the_shell(home, dataset, tmp_path):
    """The run is started from a shell (not its own session leader): cancel_job signals the
    training process only; the shell lives on and sees the CLI exit 2."""
    rc_file = tmp_path / "rc"
    command = " ".join(
        [sys.executable, "-m", "core.cli", "train", "--dataset", "tiny", "--model", "bpr"]
        + ["--device", "cpu", *LONG]
    )
    shell = subprocess.Popen(
        ["sh", "-c", f"{command} 2>/dev/null; echo $? > {rc_file}; sleep 30"],
        cwd=ROOT,
        env={**os.environ, "RECSCOPE_HOME": str(home)},
        start_new_session=True,
    )
    store = RunStore(home)
    try:
        record = _wait_running(store)
        assert record["pid"] != shell.pid and os.getpgid(record["pid"]) == shell.pid
        jobs.cancel_job(store, record["run_id"])
        deadline = time.monotonic() + 20
        while not rc_file.exists() or not rc_file.read_text().strip():
            assert time.monotonic() < deadline, "the training process did not stop"
            time.sleep(0.1)
        assert rc_file.read_text().strip() == "2"  # "error: Run … was cancelled."
        assert shell.poll() is None  # the shell was not signalled with its child
        final = store.read(record["run_id"])
        assert final["status"] == "cancelled" and final["cancel_requested"] is True
        assert not (store.folder(record["run_id"]) / "model").exists()
        assert liveness.process_start(record["pid"]) is None  # gone
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


_WRITER = textwrap.dedent(
    """
    import sys
    from core.runs.store import RunStore
    store, run_id, tag = RunStore(sys.argv[1]), sys.argv[2], sys.argv[3]
    for i in range(300):
        store.update(run_id, **{f"{tag}{i}": i})
    """
)


def test_two_processes_300_updates_each_keep_all_600_keys(home):
    store = RunStore(home)
    run_id = store.new_run({"model": "pop", "dataset": "d"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(home), run_id, tag], env=env)
        for tag in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    record = store.read(run_id)
    assert {k for k in record if k[0] in "ab" and k[1:].isdigit()} == {
        f"{tag}{i}" for tag in "ab" for i in range(300)
    }
    assert list(store.folder(run_id).glob(".run.json.*.tmp")) == []


_FINISHER = textwrap.dedent(
    """
    import signal, sys
    from core.runs.store import RunStore
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a job past its last boundary
    store = RunStore(sys.argv[1])
    print("ready", flush=True)
    for i, line in enumerate(sys.stdin):
        # every other round the job's process is gone right after its final write, so a
        # cancel that checked "running" and "dead" outside the lock would mark it cancelled
        gone = {"pid_start": "gone:0"} if i % 2 else {}
        metrics = {"test": {"ndcg@10": 0.5}}
        store.update(line.strip(), status="finished", metrics=metrics, **gone)
        print("done", flush=True)
    """
)


def test_200_cancel_vs_finish_races_never_erase_a_finished_run(home):
    store = RunStore(home)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    job = subprocess.Popen(
        [sys.executable, "-c", _FINISHER, str(home)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert job.stdout.readline().strip() == "ready"
        me = {"pid": job.pid, "pid_start": liveness.process_start(job.pid)}
        run_ids = []
        for _ in range(200):
            run_id = store.new_run({"model": "bpr", "dataset": "d"})
            store.update(run_id, status="running", host=liveness.host_name(), **me)
            job.stdin.write(run_id + "\n")
            job.stdin.flush()
            jobs.cancel_job(store, run_id)  # races the job's final write
            assert job.stdout.readline().strip() == "done"
            jobs.cancel_job(store, run_id)  # after it: a no-op
            run_ids.append(run_id)
    finally:
        job.stdin.close()
        job.wait(timeout=30)
    records = [store.read(r) for r in run_ids]
    assert [r["status"] for r in records] == ["finished"] * 200
    assert all(r["metrics"] == {"test": {"ndcg@10": 0.5}} for r in records)


def test_a_reused_pid_is_not_the_job(home):
    store = RunStore(home)
    run_id = store.new_run({"model": "bpr", "dataset": "d"})
    (store.folder(run_id) / "job.log").write_text("INFO recscope: epoch 3/9  loss 0.5000\n")
    # this test's own (live) pid, but another process's start time: the job is gone
    store.update(
        run_id, status="running", pid=os.getpid(), pid_start="boot:1", host=liveness.host_name()
    )
    record = store.read(run_id)
    assert record["status"] == "failed"
    assert record["error"] == "The training process stopped unexpectedly: epoch 3/9  loss 0.5000"
    # the same pid with its true start time is alive
    other = store.new_run({"model": "bpr", "dataset": "d"})
    store.update(other, status="running", **liveness.this_process())
    assert store.read(other)["status"] == "running"


def test_cancel_never_turns_a_finished_run_into_cancelled(home):
    store = RunStore(home)
    run_id = store.new_run({"model": "bpr", "dataset": "d"})
    store.update(run_id, status="finished", metrics={"test": {"ndcg@10": 0.25}})
    assert jobs.cancel_job(store, run_id)["status"] == "finished"
    assert store.read(run_id)["metrics"] == {"test": {"ndcg@10": 0.25}}
    queued = store.new_run({"model": "bpr", "dataset": "d"})  # no process yet
    assert jobs.cancel_job(store, queued)["status"] == "cancelled"


def test_unreadable_records_are_listed_as_failed_and_read_says_why(home, capsys):
    store = RunStore(home)
    good = store.new_run({"model": "pop", "dataset": "d"})
    not_object = store.new_run({"model": "pop", "dataset": "d"})
    truncated = store.new_run({"kind": "leaderboard", "dataset": "d"})
    (store.folder(not_object) / "run.json").write_text("[1, 2]")
    path = store.folder(truncated) / "run.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(RecScopeError) as err:
        store.read(not_object)
    assert str(err.value) == (
        f"The record of run '{not_object}' ({store.folder(not_object) / 'run.json'}) is "
        "unreadable: it holds a JSON list, not an object; delete the run folder or restore "
        "the file."
    )
    with pytest.raises(RecScopeError, match=r"is unreadable: it is cut short or not JSON"):
        store.read(truncated)
    listed = {r["run_id"]: r for r in store.list("d", kind=None)}
    assert set(listed) == {good, not_object, truncated}
    assert listed[not_object]["status"] == "failed" and listed[not_object]["unreadable"]
    assert listed[not_object]["error"] == str(err.value)
    assert listed[truncated]["kind"] == "leaderboard"
    assert [r["run_id"] for r in store.list()] == [not_object, good]  # training runs
    runs = {r["run_id"]: r for r in _runs_json(capsys)}
    assert runs[not_object]["status"] == "failed"
    assert "unreadable: it holds a JSON list" in runs[not_object]["error"]
    with pytest.raises(RecScopeError, match="is unreadable"):
        store.update(not_object, status="running")  # never overwritten blindly


def test_a_full_disk_fails_the_run_with_one_sentence(home, dataset, capsys, monkeypatch):
    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    capsys.readouterr()
    code = main(["train", "--dataset", "tiny", "--model", "bpr", "--epochs", "2", "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    (record,) = RunStore(home).list()
    folder = RunStore(home).folder(record["run_id"])
    expected = (
        f"Training failed: could not write {folder / 'model' / 'weights.pt'} (no space left on "
        "the device); free some disk space and run it again."
    )
    assert code == 2 and err[-1] == f"error: {expected}"
    assert not any(line.startswith("Traceback") for line in err)
    assert record["status"] == "failed" and record["error"] == expected
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".model")) == []
    assert not (folder / "model").exists()  # no half-written model


def test_a_permission_error_fails_the_run_with_one_sentence(home, dataset, capsys, monkeypatch):
    from core.runs import pipeline

    def refused(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "/x/recs.parquet")

    monkeypatch.setattr(pipeline, "_save_tables", refused)
    code = main(["train", "--dataset", "tiny", "--model", "pop", "--json"])
    expected = (
        "Training failed: could not write /x/recs.parquet (permission denied); check the "
        "permissions or choose another path."
    )
    assert code == 2 and capsys.readouterr().err.strip().splitlines()[-1] == f"error: {expected}"
    (record,) = RunStore(home).list()
    assert (record["status"], record["error"]) == ("failed", expected)


_FULL_RECORD = textwrap.dedent(
    """
    import errno, sys
    import core.runs.store as store
    real = store.write_json
    def full(path, data):  # the disk fills up just before the outcome is written
        if isinstance(data, dict) and data.get("status") in ("finished", "failed"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    store.write_json = full
    from core.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_a_record_the_full_disk_refuses_never_stays_running(home, dataset):
    command = ["train", "--dataset", "tiny", "--model", "pop", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _FULL_RECORD, *command],
        cwd=ROOT,
        env={**os.environ, "RECSCOPE_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    store = RunStore(home)
    run_id = json.loads((next(store.root.iterdir()) / "run.json").read_text())["run_id"]
    sentence = (
        f"Training failed: could not write {store.root / run_id / 'run.json'} (no space left "
        "on the device); free some disk space and run it again."
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"error: {sentence}"
    assert read_json(store.root / run_id / "run.json")["status"] == "running"  # on disk
    record = store.read(run_id)  # the process is gone: the read says so, with why
    assert record["status"] == "failed"
    assert record["error"] == f"The training process stopped unexpectedly: {sentence}"


def test_stale_temp_files_are_swept_when_the_workspace_opens(home):
    store = RunStore(home)
    run_id = store.new_run({"model": "pop", "dataset": "d"})
    folder = store.folder(run_id)
    old_file = folder / ".run.json.abc123.tmp"
    old_dir = folder / ".model.k2j3.tmp"
    parked = folder / ".model.old"
    fresh = folder / ".recs.parquet.x9.tmp"
    keep = folder / "notes.tmp"  # not one of ours: no leading dot
    for path in (old_file, fresh, keep):
        path.write_text("x")
    for path in (old_dir, parked):
        path.mkdir()
        (path / "weights.pt").write_text("x")
    hours_ago = time.time() - 2 * 3600
    for path in (old_file, old_dir, old_dir / "weights.pt", parked, parked / "weights.pt", keep):
        os.utime(path, (hours_ago, hours_ago))
    from core.runs import store as store_module

    store_module._swept.clear()  # this process already swept this workspace once
    RunStore(home)
    left = sorted(p.name for p in folder.iterdir() if p.name != ".run.lock")
    assert left == [".recs.parquet.x9.tmp", "notes.tmp", "run.json"]
    assert read_json(folder / "run.json")["run_id"] == run_id


def test_a_cancel_during_a_closed_form_fit_ends_cancelled_without_a_model(
    home, dataset, monkeypatch
):
    """EASE has no batches: the cancel flag is read between fit, evaluation and the tables."""
    from core import train
    from core.models.ease import EASE
    from core.runs.pipeline import new_run, train_run

    fit = EASE.fit

    def fit_then_cancel(self, *args, **kwargs):
        out = fit(self, *args, **kwargs)
        train.request_cancel()  # what SIGTERM does, arriving mid-fit
        return out

    monkeypatch.setattr(EASE, "fit", fit_then_cancel)
    store = RunStore(home)
    run_id = new_run(store, dataset, "ease")
    try:
        record = train_run(store, run_id)
    finally:
        train.clear_cancel()
    assert record["status"] == "cancelled"
    assert record["metrics"] == {}
    assert not (store.folder(run_id) / "model").exists()
    assert not (store.folder(run_id) / "recs.parquet").exists()


def test_a_finished_run_is_not_retrained_in_place(home, dataset, capsys):
    """`recscope train --run-id <finished run>` is refused; model, metrics and times stay."""
    capsys.readouterr()
    assert main(["train", "--dataset", dataset, "--model", "pop", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    store = RunStore(home)
    before = read_json(store.folder(run_id) / "run.json")
    model = {p.name: p.read_bytes() for p in store.model_dir(run_id).iterdir()}
    assert before["status"] == "finished" and before["metrics"]
    assert main(["train", "--run-id", run_id, "--json"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: Run {run_id} is already finished; a run is started only once, so start a "
        "new run instead."
    )
    assert read_json(store.folder(run_id) / "run.json") == before
    assert {p.name: p.read_bytes() for p in store.model_dir(run_id).iterdir()} == model


def test_a_failed_or_running_run_is_not_restarted_and_scenario_jobs_neither(home):
    from core.runs.pipeline import train_run

    store = RunStore(home)
    failed = store.new_run({"model": "pop", "dataset": "d"})
    store.update(failed, status="failed", error="boom", finished_at="2024-01-01T00:00:00+00:00")
    before = store.read(failed)
    sentence = f"Run {failed} is already failed; a run is started only once, so start a new run"
    with pytest.raises(RecScopeError, match=re.escape(sentence)):
        train_run(store, failed)  # in-process callers too
    with pytest.raises(RecScopeError, match=re.escape(sentence)):
        with jobs.job_process(store, failed):
            pass
    assert store.read(failed) == before
    board = store.new_run({"kind": "leaderboard", "dataset": "d"})
    store.update(board, status="finished", finished_at="2024-01-01T00:00:00+00:00")
    store.write_result(board, {"rows": [1]})
    before = store.read(board)
    with pytest.raises(RecScopeError, match=f"Run {board} is already finished"):
        jobs.run_job(store, board, "leaderboard", lambda stage: {"rows": [2]})
    assert store.read(board) == before and store.result(board) == {"rows": [1]}
    # a run cancelled while training (it had started) is refused the same way
    stopped = store.new_run({"model": "pop", "dataset": "d"})
    store.update(stopped, status="cancelled", started_at="2024-01-01T00:00:00+00:00")
    with pytest.raises(RecScopeError, match=f"Run {stopped} is already cancelled"):
        with jobs.job_process(store, stopped):
            pass


def test_a_legacy_record_holding_a_strangers_session_leader_pid_is_not_the_job(home):
    """Records without pid_start (the old code's "running" ones): a reused pid held by some
    session leader (`setsid sleep 30`) is not the job: read says failed, Cancel signals
    nothing. A process whose command line names the run still counts as alive."""
    store = RunStore(home)
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert os.getsid(stranger.pid) == stranger.pid  # it leads its own session
        legacy = {"status": "running", "pid": stranger.pid, "host": liveness.host_name()}
        read_one = store.new_run({"model": "bpr", "dataset": "d"})
        store.update(read_one, **legacy)
        record = store.read(read_one)
        assert record["status"] == "failed"
        assert record["error"] == "The training process stopped unexpectedly; its log is empty."
        cancelled = store.new_run({"model": "bpr", "dataset": "d"})
        store.update(cancelled, **legacy)
        assert jobs.cancel_job(store, cancelled)["status"] == "cancelled"
        assert jobs.cancel_job(store, cancelled)["status"] == "cancelled"
        time.sleep(0.2)
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()
    named = store.new_run({"model": "bpr", "dataset": "d"})
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", named])
    try:
        store.update(named, status="running", pid=job.pid, host=liveness.host_name())
        assert store.read(named)["status"] == "running"
    finally:
        job.kill()
        job.wait()


def test_cancel_never_signals_pid_1_or_below_and_survives_a_foreign_process(monkeypatch):
    sent = []
    monkeypatch.setattr(jobs.os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(jobs.os, "killpg", lambda pid, sig: sent.append(("killpg", pid, sig)))
    for pid in (1, 0, -5):
        jobs._signal(pid, signal.SIGTERM)
    assert sent == []

    def refused(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(jobs.os, "kill", refused)
    monkeypatch.setattr(jobs.os, "getsid", lambda pid: pid + 1)  # not a session leader
    jobs._signal(424242, signal.SIGTERM)  # another user's process: no exception


@pytest.mark.parametrize("pid", ["abc", [123], -5, 0, True, 12.0, "123"])
def test_a_malformed_pid_reads_as_stopped_and_never_breaks_the_runs_list(home, capsys, pid):
    store = RunStore(home)
    fine = store.new_run({"model": "bpr", "dataset": "d"})
    store.update(fine, status="finished", metrics={"test": {"ndcg@10": 0.5}})
    bad = store.new_run({"model": "bpr", "dataset": "d"})
    store.update(bad, status="running", pid=pid, host=liveness.host_name())
    runs = {run["run_id"]: run for run in _runs_json(capsys)}
    assert runs[fine]["status"] == "finished"
    assert runs[bad]["status"] == "failed"
    record = store.read(bad)
    assert record["error"] == "The training process stopped unexpectedly; its log is empty."
    other = store.new_run({"model": "bpr", "dataset": "d"})
    store.update(other, status="running", pid=pid, host=liveness.host_name())
    assert jobs.cancel_job(store, other)["status"] == "cancelled"  # nothing to signal
