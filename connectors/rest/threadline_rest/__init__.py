"""threadline-rest: a JSON API as a source, declared in the job file alone."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["RestApiSource", "RestConfig"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"RestConfig": "threadline_rest.config", "RestApiSource": "threadline_rest.source"})

if TYPE_CHECKING:
    from threadline_rest.config import RestConfig
    from threadline_rest.source import RestApiSource
