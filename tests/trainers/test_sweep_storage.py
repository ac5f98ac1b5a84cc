"""Tests of sweep_storage: the storages made from ``sweep_storage`` and the retries of storage calls."""
import logging
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from sqlalchemy import exc

from neuromancer.exceptions import NeuromancerError
from neuromancer.trainers.sweep_storage import (
    RetryingProxy,
    StorageRetry,
    SweepStorageError,
    SweepStorageTypeError,
    check_heartbeat_options,
    grace_period_of,
    heartbeat_interval_of,
    is_transient,
    open_storage,
    with_driver,
)

sys.path.insert(0, str(Path(__file__).parent))
from postgres_server import free_port  # noqa: E402


def refused_connection_error():
    """The error SQLAlchemy raises when no database server listens on the port."""
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(exc.OperationalError) as raised:
        engine.connect()
    return raised.value


def test_a_database_url_gets_an_rdb_storage_with_heartbeats(tmp_path):
    storage = open_storage(optuna, f"sqlite:///{tmp_path / 'sweep.db'}", heartbeat_interval=7, grace_period=30)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert (heartbeat_interval_of(storage), grace_period_of(storage)) == (7, 30)
    default = open_storage(optuna, f"sqlite:///{tmp_path / 'other.db'}")
    assert (heartbeat_interval_of(default), grace_period_of(default)) == (60, 120)


def test_other_sweep_storages(tmp_path):
    assert isinstance(open_storage(optuna, None), optuna.storages.InMemoryStorage)
    journal = open_storage(optuna, tmp_path / "sweep.journal")
    assert isinstance(journal, optuna.storages.JournalStorage) and heartbeat_interval_of(journal) is None
    given = optuna.storages.InMemoryStorage()
    assert open_storage(optuna, given) is given
    with pytest.raises(SweepStorageTypeError, match="sweep_storage must be None, a database URL") as raised:
        open_storage(optuna, 42)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, NeuromancerError)


def test_a_plain_postgresql_url_uses_the_installed_psycopg_driver():
    import importlib.util

    psycopg2_missing = importlib.util.find_spec("psycopg2") is None
    expected = "postgresql+psycopg://u@h/db" if psycopg2_missing else "postgresql://u@h/db"
    assert with_driver("postgresql://u@h/db") == expected
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


def test_a_missing_driver_is_named_without_the_password():
    with pytest.raises(ImportError, match=r"sweep_storage='mysql://me:\*\*\*@db.example/sweeps' needs a database "
                                          r"driver") as raised:
        open_storage(optuna, "mysql://me:secret@db.example/sweeps")
    assert "secret" not in str(raised.value)


def test_connection_errors_are_transient_and_others_are_not():
    refused = refused_connection_error()
    assert is_transient(refused)
    try:
        raise optuna.exceptions.StorageInternalError("commit failed") from refused
    except optuna.exceptions.StorageInternalError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("bad value"))


def test_a_storage_call_is_retried_until_the_database_answers(caplog):
    refused, calls = refused_connection_error(), []

    def flaky(value):
        calls.append(value)
        if len(calls) < 3:
            raise refused
        return value * 2

    caplog.set_level(logging.WARNING, logger="neuromancer.trainers.sweep_storage")
    assert StorageRetry(timeout=5, first_pause=0.01).call(flaky, 21, what="tell trial 3") == 42
    assert calls == [21, 21, 21]
    assert "cannot tell trial 3" in caplog.text and "could tell trial 3 again after 2 failed tries" in caplog.text


def test_a_storage_call_gives_up_after_the_timeout_and_never_retries_other_errors():
    refused, calls = refused_connection_error(), []

    def down():
        calls.append(1)
        raise refused

    with pytest.raises(exc.OperationalError):
        StorageRetry(timeout=0.2, first_pause=0.05).call(down)
    assert 2 <= len(calls) <= 4

    def wrong():
        calls.append(2)
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError, match="not a connection problem"):
        StorageRetry(timeout=5).call(wrong)
    assert calls.count(2) == 1


def test_a_retrying_proxy_passes_values_and_retries_methods():
    refused, calls = refused_connection_error(), []

    class Trial:
        number = 4

        def report(self, value, step):
            calls.append((value, step))
            if len(calls) == 1:
                raise refused

    proxy = RetryingProxy(Trial(), StorageRetry(timeout=5, first_pause=0.01))
    assert proxy.number == 4
    proxy.report(0.5, step=1)
    assert calls == [(0.5, 1), (0.5, 1)]


@pytest.mark.parametrize("options, match", [
    ((0, None, 3), "sweep_heartbeat_interval must be an integer >= 1, got 0"),
    ((1.5, None, 3), "sweep_heartbeat_interval must be an integer >= 1, got 1.5"),
    ((10, 0, 3), "sweep_grace_period must be an integer >= 1 or None, got 0"),
    ((10, 10, 3), "sweep_grace_period=10 must be longer than sweep_heartbeat_interval=10"),
    ((10, None, -1), "sweep_max_retry must be an integer >= 0, got -1"),
    ((10, None, True), "sweep_max_retry must be an integer >= 0, got True"),
])
def test_bad_heartbeat_options_are_refused(options, match):
    with pytest.raises(SweepStorageError, match=match):
        check_heartbeat_options(*options)
    check_heartbeat_options(10, 30, 0)
