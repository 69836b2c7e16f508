"""Issue 11 item 7: every CLI error is one line; user-fixable ones (I/O, corrupt compressed
files, bad values, usage) exit 2, a bug exits 1 — never a traceback (RECSCOPE_DEBUG=1 shows one).

Probe of the issue: corrupt gzip and a full disk gave "unexpected …" with exit 1.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import zlib

import pytest

import core.cli.parser as P
from core.cli import main
from core.errors import RecScopeError


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def failing(monkeypatch, exc: BaseException) -> None:
    """Make `recscope datasets` and `recscope ingest` raise `exc` from their handlers."""

    def handler(args):
        raise exc

    monkeypatch.setattr(P, "cmd_datasets", handler)
    monkeypatch.setattr(P, "cmd_ingest", handler)


@pytest.mark.parametrize(
    "exc, sentence",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/model.pt"),
            "/x/model.pt: no space left on the device; free some disk space and run it again.",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/x/run.json"),
            "/x/run.json: the disk quota is exceeded; free some disk space and run it again.",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/data.csv"),
            "/srv/data.csv: permission denied; check the permissions or choose another path.",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope.csv"),
            "/nope.csv: no such file or folder; check the path.",
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"),
            "/tmp: it is a folder, not a file; give the path of a file.",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/ro/x"),
            "/ro/x: the file system is read-only; choose a writable path (RECSCOPE_HOME).",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),  # no path known
            "No space left on the device; free some disk space and run it again.",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "/a/tmp", None, "/b/run"),
            "/a/tmp -> /b/run: invalid cross-device link; check the path and the disk, then run "
            "it again.",
        ),
        (
            MemoryError(),
            "Ran out of memory; use a smaller k, dataset or model, or a machine with more memory.",
        ),
        (
            RecScopeError("Two\nlines in   one message."),
            "Two lines in one message.",
        ),
    ],
)
def test_fixable_errors_are_one_sentence_and_exit_2(monkeypatch, home, capsys, exc, sentence):
    failing(monkeypatch, exc)
    code, out, err = cli(capsys, "datasets", "--json")
    assert (code, out) == (2, "")
    assert err == f"error: {sentence}\n"


@pytest.mark.parametrize(
    "exc, detail",
    [
        (gzip.BadGzipFile("Not a gzipped file (b'ab')"), "Not a gzipped file (b'ab')"),
        (zlib.error("Error -3 while decompressing data: invalid block type"),
         "Error -3 while decompressing data: invalid block type"),
        (EOFError("Compressed file ended before the end-of-stream marker was reached"),
         "Compressed file ended before the end-of-stream marker was reached"),
        (lzma.LZMAError("Input format not supported by decoder"),
         "Input format not supported by decoder"),
        (OSError("Invalid data stream"), "Invalid data stream"),  # bz2
    ],
)  # fmt: skip
def test_corrupt_compressed_input_names_the_file(monkeypatch, home, capsys, exc, detail):
    failing(monkeypatch, exc)
    code, out, err = cli(capsys, "ingest", "/data/log.csv.gz")
    assert (code, out) == (2, "")
    assert err == (
        f"error: The file /data/log.csv.gz is corrupt or truncated ({detail}); re-create or "
        "re-download it, or give the uncompressed file.\n"
    )
    code, _, err = cli(capsys, "datasets")  # no input path to name
    assert code == 2 and err.startswith("error: A compressed file is corrupt or truncated (")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_real_corrupt_gzip_is_one_line_exit_2(home, tmp_path, capsys, damage):
    path = tmp_path / "log.csv.gz"
    rows = "".join(f"u{i},i{i % 97}\n" for i in range(5000))
    body = gzip.compress(f"user,item\n{rows}".encode())
    assert len(body) > 4000  # so that half of it is a cut-short stream
    cut = body[:10] + b"\x00garbage" * 50 if damage == "garbage" else body[: len(body) // 2]
    path.write_bytes(cut)
    code, out, err = cli(capsys, "ingest", str(path), "--name", "log")
    assert (code, out) == (2, "")
    # the ingest reader's own sentence (core.data.ingest), naming the file
    assert err.startswith(f"error: file {path}: ") and err.count("\n") == 1
    assert "corrupt" in err
    assert "unexpected" not in err and "Traceback" not in err
    assert not (home / "datasets" / "log").exists()


def test_a_bug_is_one_line_exit_1_and_debug_shows_the_traceback(monkeypatch, home, capsys):
    failing(monkeypatch, ValueError("boom\n  at line two"))
    code, out, err = cli(capsys, "datasets")
    assert (code, out) == (1, "")
    assert err == (
        "error: unexpected ValueError: boom at line two. Set RECSCOPE_DEBUG=1 to see the "
        "traceback.\n"
    )
    monkeypatch.setenv("RECSCOPE_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        main(["datasets"])


def test_interrupt_exits_130(monkeypatch, home, capsys):
    failing(monkeypatch, KeyboardInterrupt())
    assert cli(capsys, "datasets") == (130, "", "error: interrupted.\n")


@pytest.mark.parametrize(
    "argv, line",
    [
        ([], "error: recscope: the following arguments are required: command; see "
             "`recscope --help`.\n"),
        (["train", "--model", "nope"], "error: recscope train: argument --model: invalid "
         "choice: 'nope' (choose from 'pop', 'itemknn', 'ease', 'bpr', 'neumf', 'lightgcn', "
         "'sasrec', 'bert4rec', 'gru4rec', 'hybrid', 'multiscenario'); see "
         "`recscope train --help`.\n"),
        (["datasets", "--bogus"], "error: recscope: unrecognized arguments: --bogus; see "
         "`recscope --help`.\n"),
        (["recommend", "run1"], "error: recscope recommend: the following arguments are "
         "required: --user; see `recscope recommend --help`.\n"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(home, capsys, argv, line):
    assert cli(capsys, *argv) == (2, "", line)


def test_help_still_exits_0(capsys):
    code, out, err = cli(capsys, "train", "--help")
    assert code == 0 and out.startswith("usage: recscope train") and err == ""


def test_disk_full_while_saving_a_model_is_one_sentence_and_a_failed_run(
    monkeypatch, home, tmp_path, capsys, planted_dataset
):
    """A real `recscope train` whose model write hits ENOSPC: exit 2, one line, run 'failed'."""
    from core.models import base
    from core.runs.store import RunStore

    planted_dataset.save(home)

    def full(obj, handle, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(getattr(handle, "name", "")))

    monkeypatch.setattr(base.torch, "save", full)
    code, out, err = cli(capsys, "train", "--dataset", "planted", "--model", "pop", "--json")
    assert (code, out) == (2, "")
    # the run store's own sentence (core.runs.store), naming the file being written
    assert err.startswith("error: Training failed: could not write ") and err.count("\n") == 1
    assert err.endswith(
        "weights.pt (no space left on the device); free some disk space and run it again.\n"
    )
    [record] = RunStore(home).list()
    assert record["status"] == "failed"
    assert not list(home.glob("runs/*/model/weights.pt"))
