"""Canonical column names and the mapping from a file's columns onto them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
RATING = "rating"
WEIGHT = "weight"
SCENARIO = "scenario"

# Integer codes used inside Dataset.interactions (models only ever see these).
USER = "user_code"
ITEM = "item_code"
SCENARIO_CODE = "scenario_code"

CANONICAL = (USER_ID, ITEM_ID, TIMESTAMP, RATING, WEIGHT, SCENARIO)

# Item-table columns with meaning to the app; any others are free attributes.
TITLE = "title"
TEXT = "text"
CATEGORY = "category"


@dataclass
class ColumnMapping:
    """Which column of the source file holds each canonical field (None = absent)."""

    user_id: str | None = None
    item_id: str | None = None
    timestamp: str | None = None
    rating: str | None = None
    weight: str | None = None
    scenario: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColumnMapping:
        known = {k: data.get(k) for k in CANONICAL}
        return cls(**known, extra=dict(data.get("extra") or {}))

    def source_to_canonical(self) -> dict[str, str]:
        """Rename map {source column: canonical name} for the fields that are present."""
        return {getattr(self, name): name for name in CANONICAL if getattr(self, name)}
