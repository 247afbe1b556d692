"""threadline destination: LinkedIn DMP segments (Matched Audiences contact targeting)."""

from threadline_linkedin_audiences.config import LinkedInAudiencesConfig
from threadline_linkedin_audiences.destination import LinkedInAudiences

__all__ = ["LinkedInAudiences", "LinkedInAudiencesConfig"]
