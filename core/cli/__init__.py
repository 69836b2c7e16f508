"""`recscope …`: the dashboard's twin. With --json every command prints one JSON document.

Logs go to stderr; stdout carries only results. The commands are in `core.cli.commands`,
their options in `core.cli.parser`.

Errors: every failure is ONE line on stderr, `error: <sentence>`, never a traceback (set
RECSCOPE_DEBUG=1 to see one). Exit codes:

- 2: the request or its environment is wrong and the user can fix it — a usage error
  (argparse), a `RecScopeError` (bad value, unknown id, bad file), an I/O error (disk full,
  permission denied, no such file, a folder where a file was expected …; the sentence names
  the path when the error carries one), a corrupt or truncated compressed file (gzip, zlib,
  bz2, xz, zip), and running out of memory.
- 130: interrupted (Ctrl-C).
- 1: anything else, i.e. a bug in RecScope: `error: unexpected <Type>: <text>`, still one
  line, with a pointer to RECSCOPE_DEBUG=1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import zlib

from core.cli.parser import build_parser
from core.errors import RecScopeError
from core.storage import os_error_sentence

EXIT_USAGE = 2
EXIT_BUG = 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # a usage error (one line already printed) or --help
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("RECSCOPE_DEBUG") else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # never a traceback for the user; one sentence instead
        if os.environ.get("RECSCOPE_DEBUG"):
            raise
        sentence, code = error_sentence(err, getattr(args, "path", None))
        print(f"error: {sentence}", file=sys.stderr)
        return code
    _emit(result, args.json)
    return 0


def error_sentence(err: BaseException, input_path: str | None = None) -> tuple[str, int]:
    """One line for `err` and the exit code (see the module docstring).

    `input_path` is the command's input file (ingest's PATH), named when a corrupt
    compressed stream does not say which file it came from.
    """
    if isinstance(err, RecScopeError):
        return _one_line(str(err)), EXIT_USAGE
    if _is_corrupt_stream(err):
        where = f"the file {input_path}" if input_path else "a compressed file"
        detail = _one_line(str(err)).rstrip(".") or type(err).__name__
        return (
            f"{where[0].upper()}{where[1:]} is corrupt or truncated ({detail}); re-create or "
            "re-download it, or give the uncompressed file.",
            EXIT_USAGE,
        )
    if isinstance(err, OSError):
        return os_error_sentence(err), EXIT_USAGE
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        detail = _one_line(str(err)).split(". ")[0].rstrip(".")
        return (
            f"Ran out of memory{f' ({detail})' if detail else ''}; use a smaller k, dataset or "
            "model, or a machine with more memory.",
            EXIT_USAGE,
        )
    text = _one_line(f"unexpected {type(err).__name__}: {err}").rstrip(".")
    return f"{text}. Set RECSCOPE_DEBUG=1 to see the traceback.", EXIT_BUG


def _is_corrupt_stream(err: BaseException) -> bool:
    """gzip/zlib/bz2/xz/zip errors and the EOFError of a truncated compressed stream."""
    import gzip
    import lzma
    import zipfile

    if isinstance(err, (zlib.error, gzip.BadGzipFile, lzma.LZMAError, zipfile.BadZipFile)):
        return True
    if isinstance(err, EOFError):
        return True  # gzip/bz2/lzma: "Compressed file ended before the end-of-stream marker"
    # bz2 raises a plain OSError("Invalid data stream") with no errno
    return isinstance(err, OSError) and err.errno is None and "Invalid data stream" in str(err)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=_json_default))
        return
    print(json.dumps(result, indent=2, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
