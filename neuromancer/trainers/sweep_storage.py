"""Where an offline sweep's Optuna study lives, and how its storage calls outlast a short outage.

:func:`open_storage` turns the ``sweep_storage`` argument of a sweep into an Optuna storage: a
database URL becomes an ``optuna.storages.RDBStorage`` with heartbeats on (so a worker that dies
mid-run is noticed), a path becomes a journal file, an Optuna storage object is used as given.
:class:`StorageRetry` repeats a storage call with growing pauses while the database cannot be
reached (a server restart, a dropped connection), so a worker waits for the database instead of
dying, and gives up with the original error once the outage lasts too long. Optuna and SQLAlchemy
are imported only when a sweep runs.
"""
from __future__ import annotations

import logging
import os
import random
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from neuromancer.exceptions import NeuromancerError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Defaults of the sweep_* options: a heartbeat a minute, a run declared dead after two missed ones.
HEARTBEAT_INTERVAL = 60
# How long a worker keeps retrying a storage call while the database is away, in seconds.
STORAGE_RETRY_SECONDS = 300.0


class SweepStorageError(NeuromancerError, ValueError):
    """A heartbeat or retry option that cannot be used; the message says what to pass."""


class SweepStorageTypeError(NeuromancerError, TypeError):
    """A ``sweep_storage`` of a kind no Optuna storage can be made from."""


def check_heartbeat_options(heartbeat_interval: Any, grace_period: Any, max_retry: Any) -> None:
    """Refuse heartbeat and retry options that Optuna would refuse later, or silently misread.

    :param heartbeat_interval: seconds between a running trial's heartbeats (a positive int).
    :param grace_period: seconds without a heartbeat after which a run is declared dead (a positive
        int), or None for twice the interval.
    :param max_retry: how many times the configuration of a run lost with its worker is run again
        (an int, 0 or more).
    :raises SweepStorageError: naming the option and what it accepts.
    """
    for name, value, low, optional in (("sweep_heartbeat_interval", heartbeat_interval, 1, False),
                                       ("sweep_grace_period", grace_period, 1, True),
                                       ("sweep_max_retry", max_retry, 0, False)):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            accepted = f"an integer >= {low}" + (" or None" if optional else "")
            raise SweepStorageError(f"{name} must be {accepted}, got {value!r}")
    if grace_period is not None and grace_period <= heartbeat_interval:
        raise SweepStorageError(f"sweep_grace_period={grace_period} must be longer than sweep_heartbeat_interval="
                                f"{heartbeat_interval}, or a live worker's runs would be declared dead between "
                                f"two heartbeats; use at least twice the interval")


def open_storage(optuna: Any, storage: Any, heartbeat_interval: int = HEARTBEAT_INTERVAL,
                 grace_period: int | None = None, retry: StorageRetry | None = None) -> Any:
    """The Optuna storage a sweep's study lives in, made from a ``sweep_storage`` argument.

    :param optuna: the imported ``optuna`` module.
    :param storage: None (an in-memory storage, this process only), a database URL such as
        ``'postgresql://user:password@host/db'`` or ``'sqlite:///sweep.db'`` (an ``RDBStorage`` with
        heartbeats), any other string or path (an Optuna journal file, for a shared file system),
        or an Optuna storage object (used as it is, with its own heartbeat settings).
    :param heartbeat_interval: for a URL, seconds between the heartbeats of a running trial.
    :param grace_period: for a URL, seconds without a heartbeat after which another worker marks
        the trial failed; None gives Optuna's default, twice the interval.
    :param retry: retries the connection while the database is away; None makes a default one.
    :return: an ``optuna.storages.BaseStorage``.
    :raises SweepStorageTypeError: for a value that is none of the above.
    :raises ImportError: when the URL's database driver is not installed (for PostgreSQL:
        ``pip install 'neuromancer[postgresql]'``).
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if isinstance(storage, str) and "://" in storage:
        return (retry or StorageRetry()).call(_rdb_storage, optuna, with_driver(storage), heartbeat_interval,
                                              grace_period, what="connect to the sweep database")
    if isinstance(storage, (str, os.PathLike)):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(os.fspath(storage)))
    raise SweepStorageTypeError(f"sweep_storage must be None, a database URL, a journal file path or an Optuna storage; "
                            f"got {storage!r}")


def _rdb_storage(optuna: Any, url: str, heartbeat_interval: int, grace_period: int | None) -> Any:
    """An RDBStorage with heartbeats; connections are tested before use, so a restarted server is
    reconnected to instead of failing the first call on a dead pooled connection.

    Workers started together on an empty database all create Optuna's tables at once, and all
    but one fail on a name that appeared meanwhile; they try again and find the tables made.
    """
    from sqlalchemy import exc

    failures = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True},
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except (exc.IntegrityError, exc.ProgrammingError) as error:
            failures += 1
            if failures == 5:
                raise
            logger.info("another worker is creating the sweep tables (%s); trying again", _first_line(error))
            time.sleep(random.uniform(0.1, 0.5) * failures)
        except ImportError as error:
            scheme = url.split("://", 1)[0]
            hint = ("pip install 'neuromancer[postgresql]' (the psycopg driver)" if scheme.startswith("postgres")
                    else f"install the database driver SQLAlchemy uses for {scheme!r} URLs")
            raise ImportError(f"sweep_storage={_redacted(url)!r} needs a database driver: {hint}") from error


def with_driver(url: str) -> str:
    """``url`` with the psycopg 3 driver named when it says only ``postgresql://`` and psycopg 3 is
    the PostgreSQL driver installed (SQLAlchemy before 2.1 would look for psycopg2 instead).

    :param url: a SQLAlchemy database URL.
    :return: the URL to connect with; any other URL unchanged.
    """
    import importlib.util

    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def heartbeat_interval_of(storage: Any) -> int | None:
    """Seconds between heartbeats if ``storage`` keeps them (an RDB storage with an interval), else None.

    Only storages that keep heartbeats let a worker tell a dead worker's run from a slow one; with
    the others (journal files, memory) a run left RUNNING by a dead worker stays so.
    """
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) and hasattr(storage, "record_heartbeat") else None


def grace_period_of(storage: Any) -> int | None:
    """Seconds without a heartbeat after which the storage's runs count as dead (None without heartbeats)."""
    interval = heartbeat_interval_of(storage)
    if interval is None:
        return None
    return getattr(storage, "grace_period", None) or 2 * interval


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the database could not be reached.

    Connection failures, dropped connections and server shutdowns count; a refused value, a
    missing table or a constraint violation does not, since repeating the call cannot fix them.
    """
    try:
        from sqlalchemy import exc
    except ImportError:
        return False
    seen = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return True
        link = link.__cause__ or link.__context__
    return False


class StorageRetry:
    """Repeat a storage call while the database is unreachable: pauses double from ``first_pause``
    up to ``max_pause``, for at most ``timeout`` seconds, then the last error is raised.

    :param timeout: seconds to keep trying before giving up.
    :param first_pause: seconds before the first retry.
    :param max_pause: the longest pause between two tries.
    """

    def __init__(self, timeout: float = STORAGE_RETRY_SECONDS, first_pause: float = 0.25,
                 max_pause: float = 10.0) -> None:
        self.timeout = timeout
        self.first_pause = first_pause
        self.max_pause = max_pause

    def call(self, function: Callable[..., T], *args: Any, what: str = "reach the sweep storage",
             **kwargs: Any) -> T:
        """``function(*args, **kwargs)``, tried again while it fails with a transient database error.

        :param function: the storage call.
        :param args: its positional arguments.
        :param what: what the call does, for the log (``'tell trial 3'``).
        :param kwargs: its keyword arguments.
        :return: what ``function`` returned.
        :raises Exception: the call's own error when it is not transient or the outage outlasts
            ``timeout``.
        """
        deadline, pause, failures = time.monotonic() + self.timeout, self.first_pause, 0
        while True:
            try:
                result = function(*args, **kwargs)
            except Exception as error:
                if not is_transient(error) or time.monotonic() + pause > deadline:
                    raise
                if failures == 0:
                    logger.warning("cannot %s (%s); retrying for up to %.0f s", what, _first_line(error), self.timeout)
                failures += 1
                time.sleep(pause)
                pause = min(2 * pause, self.max_pause)
                continue
            if failures:
                logger.warning("could %s again after %d failed tries", what, failures)
            return result


def _first_line(error: BaseException) -> str:
    cause = error.__cause__ or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


class RetryingProxy:
    """An object whose method calls go through a :class:`StorageRetry` (an Optuna trial or study
    handed to code that does not expect the database to go away, such as the hyperband monitor).

    :param target: the object to wrap.
    :param retry: the retry policy.
    """

    def __init__(self, target: Any, retry: StorageRetry) -> None:
        self._target = target
        self._retry = retry

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def retried(*args: Any, **kwargs: Any) -> Any:
            return self._retry.call(value, *args, what=f"call {name}", **kwargs)

        return retried
