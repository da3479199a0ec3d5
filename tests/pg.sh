#!/bin/sh
# pg.sh - a private PostgreSQL server for mailgate's tests.
#
# Usage:
#   sh tests/pg.sh start DIR PORT [DB...]
#   sh tests/pg.sh createdb DIR PORT DB...
#   sh tests/pg.sh createdbs DIR PORT PREFIX N
#   sh tests/pg.sh stop DIR
#
# start      Initialises DIR/data unless it exists (as the postgres user when
#            run as root: DIR is given to that user, and its parents must be
#            traversable by it; /tmp/... is fine, /root/... is not), starts
#            the server on 127.0.0.1:PORT and on a UNIX socket in DIR, waits
#            until it accepts connections (with a deadline), then creates the
#            role "mailgate" and the databases DB..., owned by it, unless they
#            exist. Starting again on the same DIR and PORT after a stop brings
#            the same databases back (the e2e outage tests do this).
#            Clients connect with "host=DIR port=PORT dbname=DB user=mailgate"
#            or "host=127.0.0.1 port=PORT ...". Authentication is "trust":
#            this is a throwaway server on loopback, there is no password.
# createdb   Creates the databases DB... (those missing), owned by mailgate.
# createdbs  Creates PREFIX0 .. PREFIX<N-1> (those missing), owned by mailgate.
# stop       Stops the server whose PID DIR/data/postmaster.pid holds, after
#            checking that this PID is a postgres running on DIR/data: a fast
#            shutdown, then SIGKILL to that PID only if it has not ended within
#            its deadline. Nothing to do when no server runs there.
#
# Speed over safety: fsync, synchronous_commit and full_page_writes are off.
# The server log is DIR/postgres.log. Keep DIR short: the socket
# DIR/.s.PGSQL.PORT must fit in 107 bytes.
set -eu

PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/postgres" ] && PG_BIN=$d
	done
fi
START_DEADLINE=${PG_START_DEADLINE:-30}	# seconds
STOP_DEADLINE=20

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR PORT [DB...] | createdb DIR PORT DB... | createdbs DIR PORT PREFIX N |" \
	    "stop DIR" >&2
	exit 2
}

if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/postgres" ]; then
	die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (install postgresql, or set PG_BIN)"
fi

# Runs a command as the postgres user when we are root (the server refuses
# to run as root), as ourselves otherwise.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

check_dir() {
	case $1 in
	/*) ;;
	*) die "$1: DIR must be an absolute path" ;;
	esac
	case $1 in
	*[!A-Za-z0-9_./-]*) die "$1: DIR may only hold letters, digits and _ . / -" ;;
	esac
}

check_port() {
	case $1 in
	'' | *[!0-9]*) die "$1: not a port number" ;;
	esac
	if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
		die "$1: not a port number"
	fi
}

check_name() {
	case $1 in
	'' | *[!A-Za-z0-9_]*) die "$1: database names here are letters, digits and _ only" ;;
	esac
}

# psql as the superuser, over the socket in DIR; SQL on stdin.
psql_su() {
	as_pg "$PG_BIN/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1
}

# The postmaster's PID if DIR/data/postmaster.pid names a live postgres
# started on DIR/data; nothing otherwise.
our_pid() {
	pidfile=$dir/data/postmaster.pid
	[ -f "$pidfile" ] || return 0
	pid=$(head -n 1 "$pidfile")
	case $pid in
	'' | *[!0-9]*) return 0 ;;
	esac
	[ -r "/proc/$pid/cmdline" ] || return 0
	# The command line is NUL-separated: "postgres -D DIR/data ...".
	cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline")
	first=$(printf '%s\n' "$cmd" | head -n 1)
	case $first in
	*/postgres | postgres) ;;
	*) return 0 ;;
	esac
	printf '%s\n' "$cmd" | grep -qxF -- "$dir/data" || return 0
	echo "$pid"
}

# CREATE DATABASE's options: since PostgreSQL 15 it copies the template
# through the WAL unless told to copy the files, which is slower here and
# leaves a WAL as big as all the databases together.
create_opts() {
	if [ "$(cat "$dir/data/PG_VERSION")" -ge 15 ]; then
		echo "OWNER mailgate STRATEGY FILE_COPY"
	else
		echo "OWNER mailgate"
	fi
}

create_dbs() {
	opts=$(create_opts)
	for db in "$@"; do
		check_name "$db"
		echo "SELECT format('CREATE DATABASE %I $opts', '$db')" \
		    "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \\gexec"
	done | psql_su
}

cmd=${1:-}
[ $# -ge 2 ] || usage
dir=${2%/}
check_dir "$dir"

case $cmd in
start)
	[ $# -ge 3 ] || usage
	port=$3
	check_port "$port"
	shift 3
	for db in "$@"; do
		check_name "$db"
	done
	[ -z "$(our_pid)" ] || die "a server already runs in $dir"
	mkdir -p "$dir"
	chmod 755 "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres "$dir"
	fi
	as_pg test -w "$dir" ||
		die "$dir: not writable by the postgres user (are its parents traversable?)"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N \
		    >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			die "initdb failed"
		}
	fi
	# -w: pg_ctl itself waits until the server accepts connections (it reads
	# the postmaster's PID file and notices a postmaster that died at
	# startup), for at most START_DEADLINE seconds; the postmaster runs in
	# its own session, detached from ours.
	as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$START_DEADLINE" -s \
	    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB -c log_min_messages=warning" \
	    start || {
		tail -n 20 "$dir/postgres.log" >&2 || true
		die "the server in $dir did not start and accept connections within ${START_DEADLINE}s"
	}
	"$PG_BIN/pg_isready" -q -h "$dir" -p "$port" -t 5 ||
		die "pg_ctl reported the server in $dir started, but it does not accept connections"
	psql_su <<-'EOF'
	DO $$ BEGIN CREATE ROLE mailgate LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
	EOF
	[ $# -eq 0 ] || create_dbs "$@"
	echo "pg.sh: postgres $(our_pid) running in $dir on port $port"
	;;
createdb)
	[ $# -ge 4 ] || usage
	port=$3
	check_port "$port"
	shift 3
	create_dbs "$@"
	;;
createdbs)
	[ $# -eq 5 ] || usage
	port=$3
	check_port "$port"
	prefix=$4
	n=$5
	check_name "$prefix"
	case $n in
	'' | *[!0-9]*) die "$n: not a count" ;;
	esac
	# One session for all of them; \gexec runs each CREATE DATABASE on its
	# own, outside a transaction block, as it must be.
	opts=$(create_opts)
	psql_su <<-EOF
	SELECT format('CREATE DATABASE %I $opts', '$prefix' || i)
	  FROM generate_series(0, $n - 1) AS i
	  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$prefix' || i) \gexec
	EOF
	;;
stop)
	[ $# -eq 2 ] || usage
	pid=$(our_pid)
	if [ -z "$pid" ]; then
		exit 0
	fi
	if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t "$STOP_DEADLINE" -s stop; then
		# Still ours? Then it is stuck: kill exactly that process.
		if [ "$(our_pid)" = "$pid" ]; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		die "the server in $dir did not stop within ${STOP_DEADLINE}s; killed pid $pid"
	fi
	;;
*)
	usage
	;;
esac
