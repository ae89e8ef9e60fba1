"""SSH key response model, named as the spec's schema."""

from __future__ import annotations

from pydantic import BaseModel


class DevboxCreateSshKeyView(BaseModel):
    id: str
    url: str
    ssh_private_key: str
    ssh_user: str
