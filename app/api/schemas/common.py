"""Small shared response shapes from the spec."""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from app.domain.limits import check_command, check_length


class StrictRequest(BaseModel):
    """Requests reject fields the spec does not define (additionalProperties: false), so nothing a
    client sends is silently dropped."""

    model_config = ConfigDict(extra="forbid")


def limited(max_chars: int, field: str) -> Any:
    """A string of at most `max_chars` characters, else a 400 naming `field`: raised as the domain's
    InvalidRequest (pydantic lets it through) so the answer has the project's error shape and, unlike a
    422, does not echo the oversized value back."""
    return AfterValidator(lambda value: check_length(value, max_chars, field))


def runnable(field: str) -> Any:
    """A command that fits in one argument of a process (app/domain/limits.py), else a 400 naming `field`."""
    return AfterValidator(lambda value: check_command(value, field))


class EmptyRecord(BaseModel):
    pass


class MetadataKeysView(BaseModel):
    keys: list[str]


class MetadataValuesView(BaseModel):
    key: str
    values: list[str]
