#!/usr/bin/env bash
# Start the local PostgreSQL and MariaDB the integration tests use, reachable as they expect.
#
# The tests connect to PostgreSQL on 127.0.0.1:5432 as postgres (trust) and to MariaDB on
# 127.0.0.1:3306 as root with an empty password. This script probes exactly that (with the
# tests' own drivers) and, only for a server that does not answer, as root: starts it, opens
# the login, and waits until it accepts connections. Not root, or no Debian tooling: one line
# per server saying what to do, exit 0. Exit 1 only when a start it attempted failed.
# There is no systemd on the CI machines, so servers are started with pg_ctlcluster and the
# SysV init script (or mysqld_safe), detached from the caller's session and output.
# Usage: bash .ci/services.sh [PYTHON]   (PYTHON must import psycopg and pymysql; default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-.venv/bin/python}"
wait_seconds=60
marker="# atlas-stream .ci/services.sh: the tests log in as postgres without a password"

# Prints "<server> <reason>" for each server that refuses the tests' login; nothing when both work.
probe() {
  "$py" - "$@" <<'EOF'
import sys
import psycopg, pymysql

def pg() -> None:
    psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3).close()

def mariadb() -> None:
    pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()

for name in sys.argv[1:] or ["postgresql", "mariadb"]:
    try:
        {"postgresql": pg, "mariadb": mariadb}[name]()
    except Exception as exc:
        reason = " ".join(str(exc).split())
        print(name, "connection refused: not running" if "refused" in reason else reason[:160])
EOF
}

# wait_for SERVER: poll until the tests' login works; prints the last failure reason on timeout.
wait_for() {
  local deadline=$((SECONDS + wait_seconds)) reason
  while reason="$(probe "$1")" && [ -n "$reason" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "${reason#* }"; return 1; fi
    sleep 0.5
  done
}

# The cluster PostgreSQL tests use: "<version> <name> <status> <log>" of the one on port 5432.
pg_cluster() {
  pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1, $2, $4, $7; exit }'
}

start_postgresql() {
  local cluster version name status log hba
  cluster="$(pg_cluster)"
  if [ -z "$cluster" ] && [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    echo "setup: creating PostgreSQL cluster $version/main"
    pg_createcluster --port 5432 "$version" main </dev/null >/dev/null
    cluster="$(pg_cluster)"
  fi
  if [ -z "$cluster" ]; then
    echo "setup: no PostgreSQL cluster uses port 5432 (see pg_lsclusters); the database tests need one" >&2
    return 1
  fi
  read -r version name status log <<<"$cluster"
  hba="/etc/postgresql/$version/$name/pg_hba.conf"
  if ! grep -qxF "$marker" "$hba"; then
    echo "setup: trusting TCP logins from 127.0.0.1 and ::1 in $hba"
    # First matching line wins, so these go above Debian's scram-sha-256 defaults.
    sed -i "1i $marker\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n" "$hba"
    [[ "$status" != online* ]] || pg_ctlcluster "$version" "$name" reload
  fi
  if [[ "$status" != online* ]]; then
    echo "setup: starting PostgreSQL $version/$name"
    # setsid, as for MariaDB below: the server must not depend on the caller's session or
    # process group (pg_ctl waits until it is ready).
    setsid -w pg_ctlcluster "$version" "$name" start </dev/null >/dev/null 2>&1 || true
  fi
  local reason
  if ! reason="$(wait_for postgresql)"; then
    echo "setup: PostgreSQL $version/$name does not accept postgres@127.0.0.1:5432 after" \
         "${wait_seconds}s ($reason); see $log" >&2
    return 1
  fi
}

mariadb_alive() { mysqladmin --connect-timeout=2 ping >/dev/null 2>&1; }

start_mariadb() {
  local deadline
  # Debian's mysqld_safe sends the server's errors to syslog, which these machines lack.
  local log="the error log (Debian sends it to syslog; run /usr/sbin/mariadbd --user=mysql to see it)"
  if ! mariadb_alive; then
    echo "setup: starting MariaDB"
    # setsid: the server must not share the caller's session (a CI job killing its process
    # group would take the database down) nor hold its stdout open.
    if [ -x /etc/init.d/mariadb ]; then
      setsid -w /etc/init.d/mariadb start </dev/null >/dev/null 2>&1 || true
    else
      install -d -o mysql -g mysql /run/mysqld
      setsid -f mysqld_safe </dev/null >/dev/null 2>&1
    fi
    deadline=$((SECONDS + wait_seconds))
    until mariadb_alive; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "setup: MariaDB did not start within ${wait_seconds}s; see $log" >&2
        return 1
      fi
      sleep 0.5
    done
  fi
  if [ -n "$(probe mariadb)" ]; then
    echo "setup: letting MariaDB root log in over TCP with an empty password"
    # Debian's root@localhost is unix_socket only; keep that and add an empty password, and add
    # root@127.0.0.1 for servers that do not resolve 127.0.0.1 to localhost (skip-name-resolve).
    mysql --connect-timeout=5 -uroot <<'EOF'
ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOF
  fi
  local reason
  if ! reason="$(wait_for mariadb)"; then
    echo "setup: MariaDB does not accept root@127.0.0.1:3306 with an empty password after" \
         "${wait_seconds}s ($reason); see $log" >&2
    return 1
  fi
}

refused="$(probe)" || { echo "setup: cannot probe the databases with $py (needs psycopg and pymysql)" >&2; exit 1; }
root=""; [ "$(id -u)" = 0 ] && root=1
failed=0
# fd 3, so that nothing started in the loop can read (or inherit) the list as its stdin.
while read -r -u 3 server reason; do
  [ -n "$server" ] || continue
  case "$server" in
    postgresql)
      if [ -n "$root" ] && command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        start_postgresql || failed=1
      elif ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then
        echo "setup: PostgreSQL server missing: the database tests will fail; install it with:" \
             "sudo apt-get install -y postgresql (then rerun .ci/setup as root)" >&2
      else
        echo "setup: PostgreSQL refuses postgres@127.0.0.1:5432 ($reason): the database tests will fail;" \
             "to start it and trust that login run as root: bash .ci/services.sh" >&2
      fi ;;
    mariadb)
      if [ -n "$root" ] && command -v mysqladmin >/dev/null 2>&1 && [ -x /usr/sbin/mariadbd ]; then
        start_mariadb || failed=1
      elif [ ! -x /usr/sbin/mariadbd ] && ! command -v mariadbd >/dev/null 2>&1; then
        echo "setup: MariaDB server missing: the database tests will fail; install it with:" \
             "sudo apt-get install -y mariadb-server (then rerun .ci/setup as root)" >&2
      else
        echo "setup: MariaDB refuses root@127.0.0.1:3306 with an empty password ($reason): the database" \
             "tests will fail; to start it and allow that login run as root: bash .ci/services.sh" >&2
      fi ;;
  esac
done 3<<<"$refused"
exit "$failed"
