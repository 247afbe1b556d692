"""threadline-rest: a JSON API as a source, declared in the job file alone."""

from threadline_rest.config import RestConfig
from threadline_rest.source import RestApiSource

__all__ = ["RestApiSource", "RestConfig"]
