"""threadline-singer-target: any Singer target as a threadline destination (connector `singer`)."""

__version__ = "0.1.0"
