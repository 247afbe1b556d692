"""threadline-mysql: MySQL and MariaDB tables and queries as streams, read in bulk as Arrow."""

from threadline_mysql.source import MySQLConfig, MySQLSource

__all__ = ["MySQLConfig", "MySQLSource"]
