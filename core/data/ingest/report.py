"""`IngestReport`: what ingest did, in numbers and in plain sentences.

Its own module because both halves of ingest fill it in: `ingest` (reading, mapping,
saving) and `clean` (the rows it drops and why).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.data.ingest.formats import plural
from core.data.schema import ColumnMapping

_REASONS = {
    "repeated_header": "repeated the header line",
    "missing_user_id": "had no user id",
    "missing_item_id": "had no item id",
    "missing_rating": "had no rating",
    "missing_timestamp": "had no timestamp",
    "below_min_rating": "were rated below the minimum rating",
}


@dataclass
class IngestReport:
    """What ingest did, in numbers (`to_dict`) and in plain sentences (`lines`)."""

    file: str
    format: str
    rows_read: int = 0
    rows_kept: int = 0
    duplicates: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    feedback: str = "implicit"  # "explicit" | "implicit"
    min_rating: float | None = None
    notes: list[str] = field(default_factory=list)
    layout: str = ""  # e.g. "comma-separated", "MovieLens u.data (tab-separated, no header)"
    n_users: int = 0
    n_items: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mapping"] = self.mapping.to_dict()
        return data

    def lines(self) -> list[str]:
        """Plain sentences for the UI and the CLI."""
        name = Path(self.file).name
        out = [f"Read {plural(self.rows_read, 'row')} from {name} ({self.layout or self.format})."]
        used = [
            k if k == v else f"{k} ← '{v}'"
            for k, v in self.mapping.to_dict().items()
            if v and k != "extra"
        ]
        out.append("Columns used: " + ", ".join(used) + ".")
        for reason, count in self.dropped.items():
            text = _REASONS.get(reason, reason.replace("_", " "))
            if reason == "below_min_rating":
                text = f"were rated below {self.min_rating:g}"
            out.append(f"Dropped {plural(count, 'row')} that {text}.")
        if self.duplicates:
            pairs = plural(self.duplicates, "repeated user–item row")
            out.append(f"Collapsed {pairs} into their pair's latest row.")
        if self.feedback == "explicit":
            out.append("Feedback: explicit ratings.")
        elif self.min_rating is not None:
            out.append(f"Feedback: implicit (ratings of {self.min_rating:g} or more count).")
        else:
            out.append("Feedback: implicit (each row is one positive interaction).")
        out.append(
            f"Kept {plural(self.rows_kept, 'interaction')} of {plural(self.n_users, 'user')} "
            f"on {plural(self.n_items, 'item')}."
        )
        return out + list(self.notes)
