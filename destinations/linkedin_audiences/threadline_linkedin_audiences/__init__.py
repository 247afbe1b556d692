"""threadline destination: LinkedIn DMP segments (Matched Audiences contact targeting)."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["LinkedInAudiences", "LinkedInAudiencesConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"LinkedInAudiencesConfig": "threadline_linkedin_audiences.config", "LinkedInAudiences": "threadline_linkedin_audiences.destination"})

if TYPE_CHECKING:
    from threadline_linkedin_audiences.config import LinkedInAudiencesConfig
    from threadline_linkedin_audiences.destination import LinkedInAudiences
