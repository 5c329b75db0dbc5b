"""The SQL tests' in-memory DuckDB, with the project's macros."""
from __future__ import annotations

import pytest

from pipeline.warehouse import connect, load_macros


@pytest.fixture()
def con():
    connection = connect()
    load_macros(connection)
    yield connection
    connection.close()
