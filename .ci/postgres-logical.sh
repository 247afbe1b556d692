#!/usr/bin/env bash
# Make the machine's PostgreSQL ready for logical replication (the postgres source's CDC tests):
# wal_level = logical and enough replication slots and WAL senders for tests that run at once.
# Changing them needs a server restart, done only when a value is not yet as wanted, so calling
# this again is cheap. Exits 0 without doing anything when no local cluster is installed (the
# CDC tests then skip, saying why).
set -euo pipefail

PSQL=(psql -h 127.0.0.1 -U postgres -d postgres -XAtq)
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  echo "postgres-logical: no local PostgreSQL cluster (apt-get install postgresql); CDC tests will skip"
  exit 0
fi
VERSION=$(ls /etc/postgresql | sort -n | tail -1)

if ! "${PSQL[@]}" -c "select 1" >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" main start || true
fi

want() {  # setting value: true when the running server's value differs
  [ "$("${PSQL[@]}" -c "show $1")" != "$2" ]
}
restart=no
if want wal_level logical; then "${PSQL[@]}" -c "alter system set wal_level = logical"; restart=yes; fi
for setting in max_replication_slots max_wal_senders; do
  if [ "$("${PSQL[@]}" -c "show $setting")" -lt 40 ]; then
    "${PSQL[@]}" -c "alter system set $setting = 40"; restart=yes
  fi
done
if [ "$restart" = yes ]; then
  pg_ctlcluster --skip-systemctl-redirect "$VERSION" main restart
  for _ in $(seq 1 30); do "${PSQL[@]}" -c "select 1" >/dev/null 2>&1 && break; sleep 1; done
fi
echo "postgres-logical: wal_level=$("${PSQL[@]}" -c 'show wal_level'), max_replication_slots=$("${PSQL[@]}" -c 'show max_replication_slots')"
