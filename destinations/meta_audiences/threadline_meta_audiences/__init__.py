"""threadline-meta-audiences: audiences pushed to Meta Custom Audiences (Marketing API)."""

from threadline_meta_audiences.config import MetaAudiencesConfig
from threadline_meta_audiences.destination import MetaAudiences

__all__ = ["MetaAudiences", "MetaAudiencesConfig"]
