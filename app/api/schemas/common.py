"""Small shared response shapes from the spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictRequest(BaseModel):
    """Requests reject fields the spec does not define (additionalProperties: false), so nothing a
    client sends is silently dropped."""

    model_config = ConfigDict(extra="forbid")


class EmptyRecord(BaseModel):
    pass


class MetadataKeysView(BaseModel):
    keys: list[str]


class MetadataValuesView(BaseModel):
    key: str
    values: list[str]
