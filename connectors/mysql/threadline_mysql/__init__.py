"""threadline-mysql: MySQL and MariaDB tables and queries as streams, read in bulk as Arrow."""

from typing import TYPE_CHECKING

from threadline.lazy import lazy_exports

__all__ = ["MySQLConfig", "MySQLSource"]

# imported on first use: the plugin's entry point imports this package at every start-up
__getattr__ = lazy_exports(__name__, {"MySQLConfig": "threadline_mysql.source", "MySQLSource": "threadline_mysql.source"})

if TYPE_CHECKING:
    from threadline_mysql.source import MySQLConfig, MySQLSource
