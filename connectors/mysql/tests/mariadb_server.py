"""The MariaDB the tests use: 127.0.0.1:3306, root without a password. When nothing answers
there, the server installed from the operating system's packages is started; without one the
tests skip, saying what to install."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from typing import Any

HOST, PORT = "127.0.0.1", int(os.environ.get("THREADLINE_TEST_MYSQL_PORT", "3306"))
ROOT_DSN = os.environ.get("THREADLINE_TEST_MYSQL_DSN", f"mysql://root@{HOST}:{PORT}/test")


def _answers() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


def unavailable() -> str:
    """Why no MariaDB test can run ("" when one can), after trying to start the server."""
    if _answers():
        return ""
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    if server is None:
        return "no MariaDB server on 127.0.0.1:3306 and none installed: apt-get install mariadb-server"
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", server, "--",
                    "--user=mysql"], capture_output=True, check=False)
    for _ in range(60):
        if _answers():
            return ""
        time.sleep(0.5)
    return f"MariaDB ({server}) did not start on 127.0.0.1:3306 within 30 s"


def execute(sql: str, params: Any = None, database: str | None = None) -> list[tuple]:
    import pymysql

    con = pymysql.connect(host=HOST, port=PORT, user="root", password="", database=database, autocommit=True)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        con.close()


def new_database() -> str:
    name = f"tl_my_{uuid.uuid4().hex[:10]}"
    execute(f"create database `{name}`")
    return name


def dsn(database: str, user: str = "root") -> str:
    return f"mysql://{user}@{HOST}:{PORT}/{database}"
