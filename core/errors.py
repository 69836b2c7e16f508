"""The one error family of RecScope: every message is one sentence a person can act on."""

from __future__ import annotations


class RecScopeError(Exception):
    """Base of every error RecScope raises on purpose; shown to users as its message."""


class IngestError(RecScopeError):
    """A file could not be read as interactions; names the file, row, column and a fix."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.row = row
        self.column = column
        self.hint = hint
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        text = (", ".join(where) + ": " if where else "") + self.problem.rstrip(".")
        if self.hint:
            text += f" — {self.hint.rstrip('.')}"
        return text + "."


class NotFittedError(RecScopeError):
    """A model was used before `fit` (or `load`)."""

    def __init__(self, model: object) -> None:
        name = type(model).__name__
        super().__init__(f"{name} is not fitted yet; call fit() or load() before using it.")


class ParameterError(RecScopeError):
    """A hyperparameter or option had a value outside what is allowed."""


class UnknownIdError(RecScopeError):
    """A user or item id that the dataset does not contain."""


class CancelledError(RecScopeError):
    """Training was cancelled by the user."""
