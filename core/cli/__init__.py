"""`recscope …`: the dashboard's twin. With --json every command prints one JSON document.

Errors exit non-zero with a one-line message on stderr and no traceback (set
RECSCOPE_DEBUG=1 to see one). Logs go to stderr; stdout carries only results. The
commands are in `core.cli.commands`, their options in `core.cli.parser`.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from core.cli.parser import build_parser
from core.errors import RecScopeError

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("RECSCOPE_DEBUG") else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = args.handler(args)
    except RecScopeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # never a traceback for the user; one sentence instead
        if os.environ.get("RECSCOPE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    _emit(result, args.json)
    return 0


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=_json_default))
        return
    print(json.dumps(result, indent=2, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
