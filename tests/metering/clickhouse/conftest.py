"""A ClickHouse (chdb, in-process) events store per test, whatever backend the rest of the run uses."""

import pytest

from tests.conftest import chdb_backend


@pytest.fixture
def ch_backend(chdb_path):
    backend, drop = chdb_backend(chdb_path)
    yield backend
    drop()
