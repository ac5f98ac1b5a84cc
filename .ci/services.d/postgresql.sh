# shellcheck shell=bash
# PostgreSQL, for the sweeps shared through a database (tests/trainers/test_sweep_postgres.py): the
# server programs (initdb, pg_ctl, under /usr/lib/postgresql/<version>/bin) and the 'postgres' user
# the server runs as under root. Nothing is started here: each test starts its own throw-away
# cluster in a temporary folder on a free port (tests/trainers/postgres_server.py), so a test may
# stop and restart its server, and two copies of the suite never share one.
need_packages postgresql
