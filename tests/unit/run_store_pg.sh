#!/bin/sh
# run_store_pg.sh - runs a store test against a private PostgreSQL server.
#
# Usage: sh tests/unit/run_store_pg.sh TEST_BINARY...
#   e.g. sh tests/unit/run_store_pg.sh build/test_store build/test_store_pg
#
# Starts a server with tests/pg.sh in a new directory under /tmp on a free
# loopback port, creates the databases the tests use, runs each binary in
# turn with
#   MG_TEST_STORE_PG      "host=DIR port=PORT dbname=mgtest%d user=mailgate"
#                         (test_store.c: one empty database per test,
#                         mgtest0 .. mgtest<N-1>, N = MG_TEST_PG_DATABASES,
#                         100 unless set, which is test_store.c's PG_DATABASES)
#   MG_TEST_STORE_PG_ONE  "host=DIR port=PORT dbname=mgone user=mailgate"
#                         (test_store_pg.c: one database it empties itself)
#   MG_TEST_PG_SH, MG_TEST_PG_DIR, MG_TEST_PG_PORT
#                         (to stop and start the server in outage tests)
# then stops the server, removes the directory and exits with status 1 when
# any binary failed (0 otherwise). Set MG_TEST_PG_KEEP=1 to keep the
# directory (the server log is DIR/postgres.log).
set -u

if [ $# -lt 1 ]; then
	echo "usage: $0 TEST_BINARY..." >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
for b in "$@"; do
	if [ ! -x "$b" ]; then
		echo "$0: $b: not an executable" >&2
		exit 2
	fi
done
pg_sh=$root/tests/pg.sh
ndb=${MG_TEST_PG_DATABASES:-100}

# A port that was free a moment ago; the server also listens on a socket
# in its directory, which is what the tests use.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
	exit 2
dir=$(mktemp -d /tmp/mgpg.XXXXXX) || exit 2
chmod 755 "$dir"

cleanup() {
	sh "$pg_sh" stop "$dir" || true
	if [ -n "${MG_TEST_PG_KEEP:-}" ]; then
		echo "$0: kept $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

t0=$(date +%s)
sh "$pg_sh" start "$dir" "$port" mgone >/dev/null || exit 1
if [ "$ndb" -gt 0 ]; then
	sh "$pg_sh" createdbs "$dir" "$port" mgtest "$ndb" || exit 1
fi
echo "$0: postgres ready in $dir, port $port, $ndb test databases ($(($(date +%s) - t0)) s)"

failed=0
for b in "$@"; do
	case $b in
	/*) ;;
	*) b=./$b ;;
	esac
	echo "== $b (postgresql)"
	MG_TEST_STORE_PG="host=$dir port=$port dbname=mgtest%d user=mailgate" \
	MG_TEST_STORE_PG_ONE="host=$dir port=$port dbname=mgone user=mailgate" \
	MG_TEST_PG_SH=$pg_sh MG_TEST_PG_DIR=$dir MG_TEST_PG_PORT=$port \
	    "$b" || failed=1
done
exit $failed
