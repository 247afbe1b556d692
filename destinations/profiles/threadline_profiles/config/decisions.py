"""The profile store's `decisions:` block: which campaign each person gets.

    decisions:
      holdout: 0.1                       # default share held out of every campaign
      caps:
        - {channel: email, max: 2, window: 7d}       # at most 2 new email contacts a week
      campaigns:
        loyal_thanks:
          audience: loyal_customers
          channel: email
          activation: [loyal_to_mailchimp, loyal_to_klaviyo]
          priority: 20                   # higher wins within a group
          group: lifecycle
          cooldown: 30d                  # not contacted by this campaign again for 30 days
        lapsed_winback:
          audience: lapsed_customers
          channel: advertising
          activation: lapsed_to_meta
          priority: 10
          group: lifecycle

What the decisions mean is in decisions/engine.py and the README (Decisions).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from threadline.contracts import Spec

from threadline_profiles.config.audiences import NAME, Channel, window_delta


class Cap(Spec):
    """At most `max` new contacts of one person on `channel` within `window` (24h, 7d, 4w)."""

    channel: Channel
    max: int = Field(ge=0)
    window: str

    @field_validator("window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        window_delta(value)
        return value


class Campaign(Spec):
    """An audience sent through one or more activations on one channel, with a priority."""

    audience: str
    channel: Channel
    activation: list[str]  # one name or a list: every activation that carries this campaign
    priority: int
    group: str | None = None  # within a group a person gets at most one campaign: the highest priority
    cooldown: str | None = None  # after a contact by this campaign, not contacted by it again for this long
    holdout: float | None = Field(default=None, ge=0, lt=1)  # default: decisions.holdout
    description: str = ""

    @field_validator("activation", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("activation")
    @classmethod
    def _some_activation(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name the activation(s) that carry this campaign")
        return value

    @field_validator("group")
    @classmethod
    def _group_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError(f"group name {value!r} must be lower-case letters, digits and underscores")
        return value

    @field_validator("cooldown")
    @classmethod
    def _cooldown_parses(cls, value: str | None) -> str | None:
        if value is not None:
            window_delta(value)
        return value


class Decisions(Spec):
    """Campaigns, their priority groups, frequency caps and holdouts."""

    campaigns: dict[str, Campaign] = Field(default_factory=dict)
    caps: list[Cap] = Field(default_factory=list)
    holdout: float = Field(default=0.0, ge=0, lt=1)  # share of each campaign's people held out to measure it
    conversion_window: str = "30d"  # an order this long after joining a campaign's arm converts (lift.py)

    @field_validator("conversion_window")
    @classmethod
    def _conversion_window_parses(cls, value: str) -> str:
        window_delta(value)
        return value

    @field_validator("campaigns")
    @classmethod
    def _campaign_names(cls, value: dict[str, Campaign]) -> dict[str, Campaign]:
        for name in value:
            if not NAME.match(name):
                raise ValueError(f"campaign name {name!r} must be lower-case letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _no_priority_tie(self) -> Decisions:
        seen: dict[tuple[str, int], str] = {}
        for name, campaign in self.campaigns.items():
            if campaign.group is None:
                continue
            other = seen.setdefault((campaign.group, campaign.priority), name)
            if other != name:
                raise ValueError(
                    f"campaigns.{name}.priority: {campaign.priority} is also the priority of campaign {other!r} "
                    f"in group {campaign.group!r}; give each campaign of a group its own priority")
        return self

    def holdout_of(self, campaign: str) -> float:
        own = self.campaigns[campaign].holdout
        return self.holdout if own is None else own

    def campaign_of(self, activation: str) -> str | None:
        """The campaign an activation carries (None: it pushes its audience as it is)."""
        return next((n for n, c in self.campaigns.items() if activation in c.activation), None)

    def in_order(self) -> list[str]:
        """Campaigns in the order decisions take them: highest priority first, then by name."""
        return sorted(self.campaigns, key=lambda n: (-self.campaigns[n].priority, n))


def check_references(decisions: Decisions, audiences: dict[str, object], activations: dict[str, object]) -> None:
    """Raise ValueError, naming the YAML path, for a campaign naming an audience or an
    activation that is not declared, an activation carried by two campaigns, or one that
    pushes another audience than its campaign's."""
    carried: dict[str, str] = {}
    for name, campaign in decisions.campaigns.items():
        at = f"decisions.campaigns.{name}"
        if campaign.audience not in audiences:
            raise ValueError(f"{at}.audience: audience {campaign.audience!r} is not declared under audiences "
                             f"(declared: {', '.join(audiences) or 'none'})")
        for activation in campaign.activation:
            spec = activations.get(activation)
            if spec is None:
                raise ValueError(f"{at}.activation: activation {activation!r} is not declared under activations "
                                 f"(declared: {', '.join(activations) or 'none'})")
            pushed = getattr(spec, "audience", None)
            if pushed != campaign.audience:
                raise ValueError(f"{at}.activation: activation {activation!r} pushes audience {pushed!r}, "
                                 f"not the campaign's {campaign.audience!r}")
            other = carried.setdefault(activation, name)
            if other != name:
                raise ValueError(f"{at}.activation: activation {activation!r} already carries campaign {other!r}; "
                                 "an activation carries one campaign")
