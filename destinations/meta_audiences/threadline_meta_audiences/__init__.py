"""threadline-meta-audiences: audiences pushed to Meta Custom Audiences (Marketing API)."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["MetaAudiences", "MetaAudiencesConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"MetaAudiencesConfig": "threadline_meta_audiences.config", "MetaAudiences": "threadline_meta_audiences.destination"})

if TYPE_CHECKING:
    from threadline_meta_audiences.config import MetaAudiencesConfig
    from threadline_meta_audiences.destination import MetaAudiences
