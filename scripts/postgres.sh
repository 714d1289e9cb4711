#!/usr/bin/env bash
# Install (Debian package) and start a local PostgreSQL server for the distributed tests,
# with a role and database `codesign`; prints the storage URL on stdout. Idempotent.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$" || pg_createcluster "$ver" main >/dev/null
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true   # already running is fine
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -h 127.0.0.1" && break
  sleep 0.5
done
psql_su() { su postgres -c "psql -v ON_ERROR_STOP=1 -tAq -c \"$1\""; }
[ "$(psql_su "SELECT 1 FROM pg_roles WHERE rolname='codesign'")" = "1" ] \
  || psql_su "CREATE ROLE codesign LOGIN PASSWORD 'codesign-test-secret'"
[ "$(psql_su "SELECT 1 FROM pg_database WHERE datname='codesign'")" = "1" ] \
  || su postgres -c "createdb -O codesign codesign"
echo "postgresql+psycopg2://codesign:codesign-test-secret@127.0.0.1:5432/codesign"
