"""Regenerate the shipped sample data: `python sample_data/make_sample.py` (about a second).

Writes interactions.csv, items.csv and users.csv next to this script with the default
arguments of `core.data.synth.generate` (3,000 users, seed 42).
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.data.synth import generate

log = logging.getLogger("make_sample")


def main() -> None:
    data = generate(n_users=3000, seed=42)
    paths = data.write(Path(__file__).resolve().parent)
    size = sum(p.stat().st_size for p in paths.values())
    log.info(
        "wrote %d interactions, %d items, %d users (%.2f MB) to %s",
        len(data.interactions),
        len(data.items),
        len(data.users),
        size / 1e6,
        paths["interactions"].parent,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
