"""How a job says which audience goes where: the profile store's `activations:` block.

    activations:
      lapsed_to_meta:
        audience: lapsed_customers
        connector: meta_audiences        # an installed audience destination
        mode: diff                       # or mirror: make the platform's audience exactly ours
        config: {access_token: "${META_TOKEN}", audience_id: "23851234567890123"}

Each activation is pushed after every build (`push_on_build: false` leaves it to
`threadline push`). Its name keys the push ledger, so renaming an activation starts it over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator
from threadline.contracts import PushMode, Spec

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class Activation(Spec):
    """One audience pushed to one destination."""

    audience: str = Field(description="The audience to push (a name under `audiences:`).")
    connector: str = Field(description="The audience destination plugin, e.g. meta_audiences.")
    config: dict[str, Any] = Field(default_factory=dict, description="The destination's own config.")
    mode: PushMode = Field(default=PushMode.DIFF, description="diff: send who joined and left; mirror: replace.")
    push_on_build: bool = Field(default=True, description="Push after every build of the store.")
    batch_rows: int | None = Field(default=None, ge=1, description="Rows per request (default: the platform's maximum).")
    _base_dir: Path | None = PrivateAttr(default=None)  # the job file's folder: relative paths in `config` start there

    @model_validator(mode="after")
    def _remember_base_dir(self, info: ValidationInfo) -> Activation:
        base = (info.context or {}).get("base_dir")
        self._base_dir = Path(base) if base is not None else None
        return self

    @property
    def base_dir(self) -> Path | None:
        return self._base_dir
