#!/bin/bash
# bench/run.sh - mailgate's benchmark against nginx's mail and stream proxies.
#
# Called by `make bench`. Builds mailgate and the bench tools, makes a test
# CA, starts (each as our child, each stopped by its PID on exit):
#
#   fastimap   bench/fastimap.c on 127.0.0.2: IMAP and an SMTP sink, with
#              TLS and (for nginx's mail proxy, which cannot do TLS upstream)
#              without; the upstream wherever Dovecot would be the bottleneck
#   Dovecot    a private instance on 127.0.0.2, for the logins with real auth
#   mailgate   on 127.0.0.1, IMAP and SMTP with implicit TLS, verified TLS
#              upstream, a SQLite store with two users (fast -> fastimap,
#              dove -> Dovecot)
#   nginx-mail nginx's mail proxy: TLS to the client, plaintext upstream,
#              auth_http answered by a location of the same nginx with
#              fixed Auth-Status/Server/Port/User/Pass headers
#   nginx-stream  nginx's stream proxy with TLS on both sides, upstream
#              certificate verified: the TLS-to-TLS reference
#
# and measures each figure through each of them, plus directly against the
# upstream, with build/bench/loadgen. It prints one table and writes
# bench/RESULTS.md. Everything is on loopback; the load generator shares the
# machine with what it measures. Knobs (environment):
#
#   BENCH_SECONDS  seconds per run of a logins figure (default 3)
#   BENCH_ROUNDS   runs of each logins figure per target, interleaved (3)
#   BENCH_IDLE     idle sessions per proxy (default 10000, fewer when the
#                  open-file limit cannot hold twice as many descriptors)
#   BENCH_SIZE     bytes of the FETCH message and the SMTP body (100000000)
#   BENCH_FETCHES  FETCHes of that message, and SMTP messages, per target, one
#                  per round, the targets interleaved (5)
#   BENCH_NOOPS    NOOP round trips per target (5000)
#   BENCH_BUDGET   seconds after which remaining figures are skipped (540); the
#                  figure running then may take up to its own limit (150 s at most)
#   BENCH_KEEP=1   keep the work directory (logs, configs) after the run
#   BENCH_RESULTS  where to write the results (bench/RESULTS.md)
set -eu -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) BUILDDIR=$BUILD ;; *) BUILDDIR=$REPO/$BUILD ;; esac
BB=$BUILDDIR/bench
MAILGATE=$BUILDDIR/mailgate
SECONDS_PER=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
IDLE_N=${BENCH_IDLE:-10000}
SIZE=${BENCH_SIZE:-100000000}
FETCHES=${BENCH_FETCHES:-5}
NOOPS=${BENCH_NOOPS:-5000}
BUDGET=${BENCH_BUDGET:-540}
RESULTS=${BENCH_RESULTS:-$REPO/bench/RESULTS.md}

PROV=127.0.0.2		# upstreams (see /work/shared/TESTING-NOTES.md: not 127.0.0.1)
GW=127.0.0.1		# proxies; the load generator connects from here too
APP_LOGIN=bench@example.test
APP_PASS=app-pass-bench
GW_PASS=gw-pass-bench

T0=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STAT_START=$(head -1 /proc/stat)
log() { printf '[bench +%3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
budget_left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

# ---------------------------------------------------------------------------
# Processes: every PID we start is recorded and stopped by that PID.

PIDS=()
WORK=

stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		# A zombie is gone for our purposes; wait reaps it below.
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
		log "pid $pid did not stop on SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# The live processes of process group $1 (from /proc).
group_members() {
	awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g && $1 != "Z") { print FILENAME } }' \
		/proc/[0-9]*/stat 2>/dev/null || true
}

cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
		stop_pid "${PIDS[$i]}"
	done
	# Dovecot's and nginx's helpers end with their masters; anything left of
	# the process groups we created (setsid) is ours alone.
	for pid in "${PIDS[@]}"; do
		[ -n "$(group_members "$pid")" ] && kill -KILL -- "-$pid" 2>/dev/null || true
	done
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc != 0 ]; then
			log "work directory kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" in its own session with output to $1's log; sets LAST_PID.
start_bg() {
	local logf=$1; shift
	setsid "$@" </dev/null >>"$logf" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

forget_pid() {
	local p out=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || out+=("$p"); done
	PIDS=("${out[@]}")
}

listening() { ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qx "$1:$2"; }

# wait_port ADDR PORT PID WHAT LOG: until it listens, the process exits, or 15 s.
wait_port() {
	local addr=$1 port=$2 pid=$3 what=$4 logf=$5 i
	for i in $(seq 300); do
		listening "$addr" "$port" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -20 "$logf" >&2 || true
			die "$what exited before listening on $addr:$port"
		fi
		sleep 0.05
	done
	tail -20 "$logf" >&2 || true
	die "$what is not listening on $addr:$port after 15 s"
}

USED_PORTS=" "
free_port() {
	local p
	while :; do
		# Below the ephemeral range (32768-60999), so no client takes it.
		p=$(( 20000 + RANDOM % 12000 ))
		case $USED_PORTS in *" $p "*) continue ;; esac
		ss -Htan 2>/dev/null | awk '{print $4}' | grep -q ":$p\$" && continue
		USED_PORTS="$USED_PORTS$p "
		echo "$p"
		return
	done
}

# CPU time (ns) of the processes given, every thread: the run time in
# schedstat (nanoseconds), or where the kernel has no schedstat, utime +
# stime from /proc/PID/stat (clock ticks, 10 ms).
CLK_TCK=$(getconf CLK_TCK)
cpu_ns() {
	local p sum=0 t
	for p in "$@"; do
		if [ -r "/proc/$p/schedstat" ]; then
			t=$(cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}')
		else
			t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null |
				awk -v hz="$CLK_TCK" '{printf "%.0f", ($12 + $13) * 1e9 / hz}')
		fi
		sum=$(( sum + ${t:-0} ))
	done
	echo "$sum"
}

rss_kb() {
	local p sum=0 t
	for p in "$@"; do
		t=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || true)
		sum=$(( sum + ${t:-0} ))
	done
	echo "$sum"
}

# The PIDs that make up a proxy: mailgate is one process (its thread pool
# included); nginx is its master and the workers it forked.
proxy_pids() {
	case $1 in
	mailgate) echo "$MG_PID" ;;
	mailgate-noreuse) echo "$MG2_PID" ;;
	nginx-mail) echo "$NM_PID $(ps -o pid= --ppid "$NM_PID" | tr '\n' ' ')" ;;
	nginx-stream) echo "$NS_PID $(ps -o pid= --ppid "$NS_PID" | tr '\n' ' ')" ;;
	*) echo "" ;;
	esac
}

alive() {
	case $1 in
	mailgate) kill -0 "$MG_PID" 2>/dev/null ;;
	mailgate-noreuse) kill -0 "$MG2_PID" 2>/dev/null ;;
	nginx-mail) kill -0 "$NM_PID" 2>/dev/null ;;
	nginx-stream) kill -0 "$NS_PID" 2>/dev/null ;;
	*) return 0 ;;
	esac
}

# ---------------------------------------------------------------------------
# Build and prepare

log "dependencies and build"
sh "$REPO/tests/deps.sh" bench
# The commit the gateway is built from, taken now: a commit made while the
# benchmark runs must not be credited with these figures.
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null ||
	COMMIT="$COMMIT + uncommitted changes in src/ ($(git -C "$REPO" diff HEAD -- src | sha1sum | cut -c1-8))"
make -s -C "$REPO" BUILD="$BUILD" "$BUILD/mailgate" >&2
make -s -C "$REPO/bench" BUILD="$BUILDDIR" >&2
for f in "$MAILGATE" "$BB/loadgen" "$BB/fastimap"; do
	[ -x "$f" ] || die "missing $f"
done
command -v nginx >/dev/null || die "nginx is not installed"
command -v dovecot >/dev/null || die "dovecot is not installed"

# 2 fds per proxied session: ask for 65536 (root may raise the hard limit,
# except where a container forbids it), else take the hard limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
MAX_IDLE=$(( (NOFILE - 200) / 2 ))
IDLE_NOTE=""
if [ "$IDLE_N" -gt "$MAX_IDLE" ]; then
	IDLE_NOTE="scaled down from $IDLE_N to $MAX_IDLE: the open-file limit is $NOFILE"
	IDLE_N=$MAX_IDLE
fi

WORK=$(mktemp -d /tmp/mgb.XXXXXX)
chmod 755 "$WORK"
RAW=$WORK/raw.txt
: >"$RAW"
log "work directory $WORK"

# -- test CA and certificates (openssl CLI) --
CA=$WORK/ca
mkdir -p "$CA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CA/ca.key" \
	-out "$CA/ca.crt" -days 2 -subj "/CN=mailgate bench CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
leaf() {	# leaf NAME CN SAN
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >"$CA/$1.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CA/$1.key" \
		-out "$CA/$1.csr" -subj "/CN=$2" 2>/dev/null
	openssl x509 -req -in "$CA/$1.csr" -CA "$CA/ca.crt" -CAkey "$CA/ca.key" -CAcreateserial \
		-out "$CA/$1.crt" -days 2 -extfile "$CA/$1.ext" 2>/dev/null
	chmod 644 "$CA/$1.key"
}
leaf provider provider.test "DNS:provider.test,DNS:localhost,IP:$PROV"
leaf gateway localhost "DNS:localhost,IP:$GW"

# -- ports --
F_IMAPS=$(free_port); F_IMAP=$(free_port); F_SMTPS=$(free_port); F_SMTP=$(free_port)
D_IMAPS=$(free_port); D_IMAP=$(free_port)
MG_IMAPS=$(free_port); MG_SMTPS=$(free_port); MG2_IMAPS=$(free_port)
NM_HTTP=$(free_port); NM_FAST=$(free_port); NM_DOVE=$(free_port); NM_SMTP=$(free_port)
NS_FAST=$(free_port); NS_DOVE=$(free_port); NS_SMTP=$(free_port)

# ---------------------------------------------------------------------------
# Upstreams

log "fastimap on $PROV (message $SIZE bytes)"
FLOG=$WORK/fastimap.log
start_bg "$FLOG" "$BB/fastimap" --addr "$PROV" --imaps "$F_IMAPS" --imap "$F_IMAP" \
	--smtps "$F_SMTPS" --smtp "$F_SMTP" --cert "$CA/provider.crt" --key "$CA/provider.key" \
	--user "$APP_LOGIN" --pass "$APP_PASS" --size "$SIZE"
F_PID=$LAST_PID
for p in $F_IMAPS $F_IMAP $F_SMTPS $F_SMTP; do wait_port $PROV "$p" "$F_PID" fastimap "$FLOG"; done

log "Dovecot on $PROV"
DV=$WORK/dovecot
mkdir -p "$DV/run" "$DV/state" "$DV/mail" "$DV/passwd.d"
MAILUID=$(id -u mail); MAILGID=$(id -g mail)
chown "$MAILUID:$MAILGID" "$DV/mail"
printf '%s:{PLAIN}%s::::::\n' "$APP_LOGIN" "$APP_PASS" >"$DV/passwd.d/$APP_LOGIN"
chmod 644 "$DV/passwd.d/$APP_LOGIN"
# Tuned as one would for many logins: login processes in performance mode
# (one process serves many connections), limits well above the benchmark's.
# Plaintext logins are allowed because nginx's mail proxy speaks plaintext
# to its upstream; mailgate and the other clients use TLS.
cat >"$DV/dovecot.conf" <<EOF
# Private Dovecot for mailgate's benchmark. Generated; do not edit.
base_dir = $DV/run
state_dir = $DV/state
log_path = $DV/dovecot.log
info_log_path = $DV/dovecot.log
instance_name = mg-bench-$(basename "$WORK")
protocols = imap
listen = $PROV
ssl = yes
ssl_cert = <$CA/provider.crt
ssl_key = <$CA/provider.key
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100000
first_valid_uid = $MAILUID
last_valid_uid = $MAILUID
default_process_limit = 1000
default_client_limit = 4000
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DV/passwd.d/%u
}
userdb {
  driver = static
  args = uid=$MAILUID gid=$MAILGID home=$DV/mail/%u
}
service imap-login {
  inet_listener imap {
    address = $PROV
    port = $D_IMAP
  }
  inet_listener imaps {
    address = $PROV
    port = $D_IMAPS
    ssl = yes
  }
  service_count = 0
  process_min_avail = 2
  client_limit = 4000
}
service imap {
  process_limit = 1000
}
EOF
DLOG=$DV/console.log
start_bg "$DLOG" dovecot -F -c "$DV/dovecot.conf"
D_PID=$LAST_PID
for p in $D_IMAPS $D_IMAP; do wait_port $PROV "$p" "$D_PID" Dovecot "$DLOG"; done

# ---------------------------------------------------------------------------
# mailgate

MGD=$WORK/mailgate
mkdir -p "$MGD"
MG_CONF=$MGD/mailgate.yaml
MG_LOG=$MGD/mailgate.log
# Every client of the benchmark comes from 127.0.0.1 as one of two users:
# the per-address and per-user limits (where this mailgate has them) are
# raised above what the benchmark opens, so that they measure, not refuse.
mg_config() {	# mg_config WITH_LIMITS [REUSE]: REUSE "0" for the mailgate-noreuse target
	local reuse=${2:-} dir=$MGD
	[ "$reuse" = 0 ] && dir=$MGD2
	echo "# mailgate configuration for the benchmark. Generated; do not edit."
	if [ "$reuse" = 0 ]; then
		cat <<EOF
# Provider connections are not kept after LOGOUT: every login connects.
listen:
  - { protocol: imap, address: "$GW:$MG2_IMAPS", tls: implicit }
EOF
	else
		cat <<EOF
listen:
  - { protocol: imap, address: "$GW:$MG_IMAPS", tls: implicit }
  - { protocol: smtp, address: "$GW:$MG_SMTPS", tls: implicit }
EOF
	fi
	cat <<EOF
tls: { certificate: $CA/gateway.crt, key: $CA/gateway.key }
store: { sqlite: $dir/store.db, master_key: $dir/master.key }
auth: { cache_ttl: 1h }
# The crowd of failed logins in the "while failed logins are hashed" figure
# comes from one address: delays and blocking would stop it, not the hashing.
brute_force: { delay_after: 1000, max_delay: 0, block_after: 100000 }
EOF
	if [ "$1" = 1 ]; then
		cat <<EOF
timeouts: { login: 60, idle: 1800, connect: 10, shutdown_grace: 1s${reuse:+, upstream_reuse: $reuse} }
limits:
  connections: $(( NOFILE / 2 ))
  connections_per_ip: 1000000
  sessions_per_user: 100000
EOF
	else
		echo "timeouts: { login: 60, idle: 1800, connect: 10 }"
	fi
	cat <<EOF
providers:
  fast:
    imap: { host: $PROV, port: $F_IMAPS, tls: implicit }
    smtp: { host: $PROV, port: $F_SMTPS, tls: implicit }
    ca_file: $CA/ca.crt
  dove:
    imap: { host: $PROV, port: $D_IMAPS, tls: implicit }
    ca_file: $CA/ca.crt
EOF
}
mg() { "$MAILGATE" "$@" -c "$MG_CONF"; }
mg_config 1 >"$MG_CONF"
if ! mg check --syntax-only >"$MGD/check.out" 2>&1; then
	# An older mailgate without limits: (an unknown key is an error).
	mg_config 0 >"$MG_CONF"
	mg check --syntax-only >&2 || die "the generated mailgate configuration is rejected"
	log "this mailgate has no limits: configuration block; running without it"
fi
# The logins figures' clients each log in as a user of their own (fast-0 ...
# fast-255, dove-0 ... dove-31), as an organisation's devices do: one account
# at 256 concurrent logins is not a load any provider accepts (Gmail allows an
# account 15 connections). All of them have the same account at the upstream.
# They are imported with one SHA512-CRYPT hash of the gateway password (no
# slow hash per user here; the warm-up login of each caches its check).
LOGIN_USERS=256
DOVE_USERS=32
mg_users() {
	local i f h
	mg init >/dev/null
	f=$(dirname "$MG_CONF")/users.passwd
	h=$(openssl passwd -6 "$GW_PASS")
	: >"$f"
	for i in $(seq 0 $(( LOGIN_USERS - 1 ))); do echo "fast-$i:{SHA512-CRYPT}$h" >>"$f"; done
	for i in $(seq 0 $(( DOVE_USERS - 1 ))); do echo "dove-$i:{SHA512-CRYPT}$h" >>"$f"; done
	mg import dovecot-passwd "$f" >/dev/null
	for u in fast dove; do
		echo "$GW_PASS" | mg user add "$u" --password-stdin >/dev/null
		echo "$APP_PASS" | mg account set "$u" "$u" --login "$APP_LOGIN" --password-stdin >/dev/null
	done
	for i in $(seq 0 $(( LOGIN_USERS - 1 ))); do
		echo "$APP_PASS" | mg account set "fast-$i" fast --login "$APP_LOGIN" --password-stdin >/dev/null
	done
	for i in $(seq 0 $(( DOVE_USERS - 1 ))); do
		echo "$APP_PASS" | mg account set "dove-$i" dove --login "$APP_LOGIN" --password-stdin >/dev/null
	done
}
mg_users
# A second mailgate for the logins figures: the same, except that it keeps no
# provider connection after LOGOUT (timeouts.upstream_reuse: 0), so that
# every login costs it a provider connection as in earlier versions. A
# mailgate without upstream_reuse has no such target.
MGD2=$WORK/mailgate-noreuse
mkdir -p "$MGD2"
MG2_CONF=$MGD2/mailgate.yaml
MG2_LOG=$MGD2/mailgate.log
MG2=""
mg_config 1 0 >"$MG2_CONF"
if "$MAILGATE" check --syntax-only -c "$MG2_CONF" >"$MGD2/check.out" 2>&1; then
	MG2=1
	(MG_CONF=$MG2_CONF; mg_users)
else
	log "this mailgate has no timeouts.upstream_reuse: no mailgate-noreuse target"
fi

start_mailgate() {
	echo "=== mailgate started $(date -u +%FT%TZ)" >>"$MG_LOG"
	start_bg "$MG_LOG" "$MAILGATE" run -c "$MG_CONF"
	MG_PID=$LAST_PID
	wait_port $GW "$MG_IMAPS" "$MG_PID" mailgate "$MG_LOG"
	wait_port $GW "$MG_SMTPS" "$MG_PID" mailgate "$MG_LOG"
}
start_mailgate2() {
	[ -n "$MG2" ] || return 0
	echo "=== mailgate started $(date -u +%FT%TZ)" >>"$MG2_LOG"
	start_bg "$MG2_LOG" "$MAILGATE" run -c "$MG2_CONF"
	MG2_PID=$LAST_PID
	wait_port $GW "$MG2_IMAPS" "$MG2_PID" mailgate-noreuse "$MG2_LOG"
}
log "mailgate on $GW"
start_mailgate
start_mailgate2

# ---------------------------------------------------------------------------
# nginx: one instance for the mail proxy (with its auth_http location), one
# for the stream proxy, so that each one's CPU and memory are its own.

nginx_common() {	# nginx_common DIR MODULE
	cat <<EOF
# nginx for mailgate's benchmark. Generated; do not edit.
load_module /usr/lib/nginx/modules/$2;
daemon off;
master_process on;
user root;
worker_processes auto;
worker_rlimit_nofile $NOFILE;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $(( NOFILE - 50 )); }
EOF
}

NMD=$WORK/nginx-mail
mkdir -p "$NMD/tmp"
auth_loc() {	# auth_loc NAME PORT
	cat <<EOF
		location = /$1 {
			add_header Auth-Status OK;
			add_header Auth-Server $PROV;
			add_header Auth-Port $2;
			add_header Auth-User $APP_LOGIN;
			add_header Auth-Pass $APP_PASS;
			return 204;
		}
EOF
}
{
	nginx_common "$NMD" ngx_mail_module.so
	cat <<EOF
http {
	access_log off;
	client_body_temp_path $NMD/tmp/body;
	proxy_temp_path $NMD/tmp/proxy;
	fastcgi_temp_path $NMD/tmp/fastcgi;
	uwsgi_temp_path $NMD/tmp/uwsgi;
	scgi_temp_path $NMD/tmp/scgi;
	server {
		listen $GW:$NM_HTTP;
$(auth_loc auth-fast "$F_IMAP")
$(auth_loc auth-dove "$D_IMAP")
$(auth_loc auth-smtp "$F_SMTP")
	}
}
mail {
	server_name mailgate-bench;
	ssl_certificate $CA/gateway.crt;
	ssl_certificate_key $CA/gateway.key;
	# nginx 1.22's mail and stream modules default to TLS 1.0-1.2 only.
	ssl_protocols TLSv1.2 TLSv1.3;
	proxy_pass_error_message on;
	server {
		listen $GW:$NM_FAST ssl;
		protocol imap;
		auth_http $GW:$NM_HTTP/auth-fast;
	}
	server {
		listen $GW:$NM_DOVE ssl;
		protocol imap;
		auth_http $GW:$NM_HTTP/auth-dove;
	}
	server {
		listen $GW:$NM_SMTP ssl;
		protocol smtp;
		smtp_auth plain login;
		xclient off;
		auth_http $GW:$NM_HTTP/auth-smtp;
	}
}
EOF
} >"$NMD/nginx.conf"

NSD=$WORK/nginx-stream
mkdir -p "$NSD"
{
	nginx_common "$NSD" ngx_stream_module.so
	cat <<EOF
stream {
	ssl_certificate $CA/gateway.crt;
	ssl_certificate_key $CA/gateway.key;
	# nginx 1.22's mail and stream modules default to TLS 1.0-1.2 only.
	ssl_protocols TLSv1.2 TLSv1.3;
	proxy_ssl_protocols TLSv1.2 TLSv1.3;
	proxy_ssl on;
	proxy_ssl_verify on;
	proxy_ssl_trusted_certificate $CA/ca.crt;
	proxy_ssl_name provider.test;
	proxy_ssl_session_reuse on;
	# The TLS 1.3 order mailgate offers its providers, so that both
	# TLS-to-TLS proxies negotiate the same suite upstream.
	proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
	server { listen $GW:$NS_FAST ssl; proxy_pass $PROV:$F_IMAPS; }
	server { listen $GW:$NS_DOVE ssl; proxy_pass $PROV:$D_IMAPS; }
	server { listen $GW:$NS_SMTP ssl; proxy_pass $PROV:$F_SMTPS; }
}
EOF
} >"$NSD/nginx.conf"

start_nginx_mail() {
	start_bg "$NMD/console.log" nginx -p "$NMD" -e "$NMD/error.log" -c "$NMD/nginx.conf"
	NM_PID=$LAST_PID
	for p in $NM_HTTP $NM_FAST $NM_DOVE $NM_SMTP; do
		wait_port $GW "$p" "$NM_PID" nginx-mail "$NMD/error.log"
	done
}
start_nginx_stream() {
	start_bg "$NSD/console.log" nginx -p "$NSD" -e "$NSD/error.log" -c "$NSD/nginx.conf"
	NS_PID=$LAST_PID
	for p in $NS_FAST $NS_DOVE $NS_SMTP; do
		wait_port $GW "$p" "$NS_PID" nginx-stream "$NSD/error.log"
	done
}
log "nginx mail proxy and stream proxy on $GW"
start_nginx_mail
start_nginx_stream

# ---------------------------------------------------------------------------
# Measuring

declare -A R	# results: "FIGURE.TARGET.KEY" -> value
TARGETS="mailgate direct nginx-mail nginx-stream"
# The logins figures have one more: mailgate keeping no provider connection.
LOGIN_TARGETS="mailgate${MG2:+ mailgate-noreuse} direct nginx-mail nginx-stream"

# lg_args TARGET UPSTREAM PROTO: loadgen's connection options for a target.
lg_args() {
	local t=$1 up=$2 proto=$3 port user pass name=$GW
	case $t.$up.$proto in
	mailgate.fast.imap) port=$MG_IMAPS; user=fast ;;
	mailgate.dove.imap) port=$MG_IMAPS; user=dove ;;
	mailgate.fast.smtp) port=$MG_SMTPS; user=fast ;;
	mailgate-noreuse.fast.imap) port=$MG2_IMAPS; user=fast ;;
	mailgate-noreuse.dove.imap) port=$MG2_IMAPS; user=dove ;;
	direct.fast.imap) port=$F_IMAPS ;;
	direct.dove.imap) port=$D_IMAPS ;;
	direct.fast.smtp) port=$F_SMTPS ;;
	nginx-mail.fast.imap) port=$NM_FAST; user=fast ;;
	nginx-mail.dove.imap) port=$NM_DOVE; user=dove ;;
	nginx-mail.fast.smtp) port=$NM_SMTP; user=fast ;;
	nginx-stream.fast.imap) port=$NS_FAST ;;
	nginx-stream.dove.imap) port=$NS_DOVE ;;
	nginx-stream.fast.smtp) port=$NS_SMTP ;;
	*) die "no target $t.$up.$proto" ;;
	esac
	if [ -n "${user:-}" ]; then
		pass=$GW_PASS		# the device's gateway password (nginx: not checked)
	else
		user=$APP_LOGIN		# through a byte proxy, or direct: the upstream's own
		pass=$APP_PASS
	fi
	[ "$t" = direct ] && name=$PROV
	# No --bind: on loopback the kernel picks 127.0.0.1 as the source anyway,
	# and a bind before connect would choose the port without knowing the
	# destination, which runs out of ports with thousands of idle sessions.
	echo "--connect ${name}:$port --ca $CA/ca.crt --verify-name $name --user $user --pass $pass"
}

# parse_into PREFIX LINE: stores each key=value of LINE as R[PREFIX.key].
parse_into() {
	local prefix=$1 rest=$2
	while [[ $rest =~ ^[[:space:]]*([a-z_0-9]+)=(\"[^\"]*\"|[^[:space:]]*)(.*)$ ]]; do
		R[$prefix.${BASH_REMATCH[1]}]=${BASH_REMATCH[2]//\"/}
		rest=${BASH_REMATCH[3]}
	done
}

# measure FIGURE TARGET UPSTREAM PROTO MODE ARGS...: one loadgen run, with the
# proxy's CPU time around it. Results under R[FIGURE.TARGET.*].
measure() {
	local fig=$1 t=$2 up=$3 proto=$4 mode=$5; shift 5
	local pids c0 c1 out rc=0 key=$fig.$t
	LAST_FIG=$key
	if ! alive "$t"; then
		R[$key.status]=down
		log "$fig $t: proxy is not running"
		return 0
	fi
	pids=$(proxy_pids "$t")
	c0=$(cpu_ns $pids)
	# shellcheck disable=SC2046
	out=$("$BB/loadgen" "$mode" $(lg_args "$t" "$up" "$proto") --label "$key" "$@" \
		2>>"$WORK/loadgen.err") || rc=$?
	c1=$(cpu_ns $pids)
	echo "$out" >>"$RAW"
	parse_into "$key" "$(echo "$out" | tail -1)"
	R[$key.cpu_s]=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
	R[$key.rc]=$rc
	if ! alive "$t"; then
		R[$key.status]=crashed
		log "$fig $t: THE PROXY DIED during this figure"
		echo "$t died during $fig" >>"$WORK/incidents"
		R[$key.log_tail]=$(tail -3 "$MG_LOG" | tr '\n' ' ' | cut -c1-300)
	fi
	log "$fig $t: $(echo "$out" | tail -1 | cut -c1-160) cpu=${R[$key.cpu_s]}s"
}

restart_if_dead() {
	if ! kill -0 "$MG_PID" 2>/dev/null; then
		log "mailgate is down: restarting it for the next figures"
		st=0
		wait "$MG_PID" 2>/dev/null || st=$?
		[ "${R[$LAST_FIG.status]:-}" = crashed ] ||
			echo "mailgate found dead after $LAST_FIG (exit status $st)" >>"$WORK/incidents"
		forget_pid "$MG_PID"
		start_mailgate
	fi
}

skip_if_late() {	# skip_if_late NEEDED_SECONDS WHAT
	if [ "$(budget_left)" -lt "$1" ]; then
		log "skipping $2: time budget"
		echo "$2" >>"$WORK/skipped"
		return 0
	fi
	return 1
}

# -- single-core crypto limit --
log "openssl speed (single core, 16 KiB blocks)"
speed() {	# speed CIPHER [-decrypt]: MB/s
	openssl speed -mr -seconds 1 -bytes 16384 ${2:-} -evp "$1" 2>/dev/null |
		awk -F: '/^\+F:/ {printf "%.0f", $4 / 1e6}'
}
for c in aes-128-gcm aes-256-gcm; do
	R[speed.$c.enc]=$(speed $c)
	R[speed.$c.dec]=$(speed $c -decrypt)
	R[speed.$c.both]=$(awk -v e="${R[speed.$c.enc]}" -v d="${R[speed.$c.dec]}" \
		'BEGIN {printf "%.0f", ((e > 0 && d > 0) ? 1 / (1 / e + 1 / d) : 0)}')
	echo "speed cipher=$c enc_mbps=${R[speed.$c.enc]} dec_mbps=${R[speed.$c.dec]} relay_mbps=${R[speed.$c.both]}" >>"$RAW"
done

# -- sanity: one login through every path; warms mailgate's auth cache --
log "one login through every path"
for up in fast dove; do
	for t in $LOGIN_TARGETS; do
		measure "check.$up" "$t" "$up" imap logins --count 1 --timeout 20
		if [ "${R[check.$up.$t.logins]:-0}" != 1 ]; then
			log "WARNING: login through $t to $up failed: ${R[check.$up.$t.first_error]:-}"
		fi
	done
done
measure check.smtp mailgate fast smtp smtp --size 1000 --timeout 20
# Every login user's check cached (one password check each, before any figure).
for t in $LOGIN_TARGETS; do
	case $t in mailgate*) ;; *) continue ;; esac
	measure warm.fast "$t" fast imap logins --users $LOGIN_USERS --concurrency $LOGIN_USERS \
		--count $LOGIN_USERS --timeout 60
	measure warm.dove "$t" dove imap logins --users $DOVE_USERS --concurrency $DOVE_USERS \
		--count $DOVE_USERS --timeout 60
done

mg_rss() {	# mg_rss WHEN: a snapshot of mailgate's memory, for leaks
	echo "mailgate_rss when=$1 pid=$MG_PID rss_kb=$(rss_kb "$MG_PID")" >>"$RAW"
}
mg_rss after-checks

# pick_round FIG TARGET: of the rounds of a logins figure, the one where the
# proxy spent the least CPU per login (direct: the highest rate) becomes
# R[FIG.TARGET.*]. The machine is shared and noisy; the better round is the
# one less disturbed.
pick_round() {
	local fig=$1 t=$2 r best="" bv="" val k
	for r in $(seq "$ROUNDS"); do
		[ -n "${R[$fig.r$r.$t.logins]:-}" ] || continue
		if [ "$t" = direct ]; then
			val=$(awk -v x="${R[$fig.r$r.$t.rate]}" 'BEGIN {printf "%.6f", -x}')
		else
			val=$(awk -v c="${R[$fig.r$r.$t.cpu_s]}" -v n="${R[$fig.r$r.$t.logins]}" \
				'BEGIN {printf "%.6f", (n > 0 ? c / n : 1e9)}')
		fi
		if [ -z "$bv" ] || awk -v a="$val" -v b="$bv" 'BEGIN {exit !(a < b)}'; then
			best=$r
			bv=$val
		fi
	done
	for k in "${!R[@]}"; do
		case $k in
		"$fig.r$best.$t".*) R[$fig.$t.${k#"$fig.r$best.$t".}]=${R[$k]} ;;
		"$fig.r"*".$t.status") R[$fig.$t.status]=${R[$k]} ;;
		esac
	done
	[ -z "$best" ] || R[$fig.$t.round]=$best
}

# logins_figure FIG UPSTREAM CONCURRENCY LOADGEN-ARGS...: every target,
# ROUNDS times, the order of the targets reversed in every other round.
logins_figure() {
	local fig=$1 up=$2 c=$3 r t order users; shift 3
	for r in $(seq "$ROUNDS"); do
		order=$LOGIN_TARGETS
		[ $(( r % 2 )) = 0 ] && order=$(echo "$LOGIN_TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
		for t in $order; do
			skip_if_late 60 "$fig $t round $r" && continue
			# Each client its own gateway user where there are gateway users.
			users=""
			case $t in mailgate* | nginx-mail) users="--users $c" ;; esac
			# shellcheck disable=SC2086
			measure "$fig.r$r" "$t" "$up" imap logins --duration "$SECONDS_PER" \
				--timeout $(( SECONDS_PER + 30 )) --concurrency "$c" $users "$@"
			restart_if_dead
		done
	done
	for t in $LOGIN_TARGETS; do pick_round "$fig" "$t"; done
}

# -- 1. logins/s: fastimap upstream, fresh and resumed TLS --
for resume in fresh resumed; do
	for c in 1 32 256; do
		if [ $resume = resumed ]; then
			logins_figure "login.$resume.c$c" fast "$c" --resume
		else
			logins_figure "login.$resume.c$c" fast "$c"
		fi
	done
done
# -- 1b. logins/s with real auth: Dovecot upstream --
for c in 1 32; do
	logins_figure "login.dove.c$c" dove "$c"
done

# -- 1c. a cached login while a crowd of failed logins is being hashed --
# 32 clients log in as unknown users (a new name each time, so no two checks
# are shared) with a wrong password: each costs mailgate a full password hash.
# Meanwhile one client logs in again and again as a user whose credential is
# cached. mailgate only: nginx's auth_http here returns fixed headers.
if ! skip_if_late 30 "storm" && alive mailgate; then
	# shellcheck disable=SC2046
	start_bg "$WORK/storm.out" "$BB/loadgen" logins $(lg_args mailgate fast imap) \
		--user nobody --user-random --pass wrong-password --concurrency 32 --duration 8 \
		--timeout 40 --label storm.crowd
	STORM_PID=$LAST_PID
	measure storm mailgate fast imap logins --concurrency 1 --duration 5 --timeout 30
	wait "$STORM_PID" 2>/dev/null || true
	forget_pid "$STORM_PID"
	grep '^mode=' "$WORK/storm.out" >>"$RAW" || true
	parse_into storm.crowd "$(grep '^mode=' "$WORK/storm.out" | tail -1)"
	restart_if_dead
fi

mg_rss after-logins

# -- 2. relay throughput: FETCH and SMTP DATA of $SIZE bytes --

# xfer_sum FIG TARGET: the rounds of a throughput figure summed up under
# R[FIG.TARGET.*]: best_mbps (the fastest transfer), mbps (all bytes over all
# seconds), bytes, seconds, cpu_s, transfers, cipher.
xfer_sum() {
	local fig=$1 t=$2 r k n=0 bytes=0 secs=0 cpu=0 best=0
	for r in $(seq "$FETCHES"); do
		k=$fig.r$r.$t
		if [ -n "${R[$k.status]:-}" ]; then
			R[$fig.$t.status]=${R[$k.status]}
		fi
		[ -n "${R[$k.bytes]:-}" ] && [ "${R[$k.bytes]}" -gt 0 ] 2>/dev/null || continue
		n=$(( n + 1 ))
		bytes=$(( bytes + R[$k.bytes] ))
		secs=$(awk -v a="$secs" -v b="${R[$k.seconds]}" 'BEGIN {printf "%.6f", a + b}')
		cpu=$(awk -v a="$cpu" -v b="${R[$k.cpu_s]}" 'BEGIN {printf "%.4f", a + b}')
		best=$(awk -v a="$best" -v b="${R[$k.best_mbps]:-${R[$k.mbps]}}" 'BEGIN {print (b > a ? b : a)}')
		R[$fig.$t.cipher]=${R[$k.cipher]:-}
	done
	[ "$n" -gt 0 ] || return 0
	R[$fig.$t.transfers]=$n
	R[$fig.$t.bytes]=$bytes
	R[$fig.$t.seconds]=$secs
	R[$fig.$t.cpu_s]=$cpu
	R[$fig.$t.best_mbps]=$best
	R[$fig.$t.mbps]=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {if (s > 0) printf "%.1f", b / 1e6 / s}')
}

# xfer_figure FIG PROTO MODE ARGS...: one transfer per target per round,
# FETCHES rounds, the targets' order reversed in every other round (as for
# the logins), so that a slow spell of the machine does not fall on one
# target's transfers only.
xfer_figure() {
	local fig=$1 proto=$2 mode=$3 r t order; shift 3
	for r in $(seq "$FETCHES"); do
		order=$TARGETS
		[ $(( r % 2 )) = 0 ] && order=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
		for t in $order; do
			skip_if_late 40 "$fig $t round $r" && continue
			measure "$fig.r$r" "$t" fast "$proto" "$mode" --count 1 --timeout 120 "$@"
			restart_if_dead
		done
	done
	for t in $TARGETS; do xfer_sum "$fig" "$t"; done
}
xfer_figure fetch imap fetch
xfer_figure smtp smtp smtp --size "$SIZE"

mg_rss after-throughput

# -- 4. NOOP latency --
for t in $TARGETS; do
	skip_if_late 30 "noop $t" && continue
	measure noop "$t" fast imap noop --count "$NOOPS" --timeout 60
	restart_if_dead
done

# -- 3. memory per idle session: a fresh proxy each, N sessions in IDLE --
idle_figure() {	# idle_figure TARGET
	local t=$1 pids r0 r1 c0 c1 out=$WORK/idle.$1.out lgpid i est limit
	case $t in
	mailgate) stop_pid "$MG_PID"; forget_pid "$MG_PID"; start_mailgate ;;
	nginx-mail) stop_pid "$NM_PID"; forget_pid "$NM_PID"; start_nginx_mail ;;
	nginx-stream) stop_pid "$NS_PID"; forget_pid "$NS_PID"; start_nginx_stream ;;
	esac
	# One login first (mailgate: the auth cache; everyone: lazy setup).
	measure "idle.warm" "$t" fast imap logins --count 1 --timeout 20
	sleep 0.5	# let the warm-up connection's memory settle before the baseline
	pids=$(proxy_pids "$t")
	r0=$(rss_kb $pids)
	c0=$(cpu_ns $pids)
	: >"$out"
	# Setting the sessions up may take at most 150 s, and not much past the budget.
	limit=$(( $(budget_left) + 30 ))
	[ "$limit" -gt 150 ] && limit=150
	[ "$limit" -lt 30 ] && limit=30
	# shellcheck disable=SC2046
	setsid "$BB/loadgen" idle $(lg_args "$t" fast imap) --label "idle.$t" --count "$IDLE_N" \
		--ramp 64 --hold 600 --timeout $(( limit + 60 )) >"$out" 2>>"$WORK/loadgen.err" &
	lgpid=$!
	PIDS+=("$lgpid")
	est=""
	for i in $(seq $(( limit * 10 ))); do
		est=$(grep -m1 'event=established' "$out" || true)
		[ -n "$est" ] && break
		kill -0 "$lgpid" 2>/dev/null || break
		sleep 0.1
	done
	c1=$(cpu_ns $pids)
	# Settle: buffers released after the last handshake bytes; mailgate hands
	# the pages a burst of handshakes left free back within 2 s (the same
	# wait for every proxy).
	sleep 3
	pids=$(proxy_pids "$t")
	r1=$(rss_kb $pids)
	kill -TERM "$lgpid" 2>/dev/null || true
	stop_pid "$lgpid"
	forget_pid "$lgpid"
	if [ "$t" = mailgate ]; then
		sleep 2		# the gateway notices the closes and frees the sessions
		mg_rss "after-idle-closed(peak=${r1}kB)"
	fi
	cat "$out" >>"$RAW"
	parse_into "idle.$t" "$est"
	parse_into "idle.$t.end" "$(grep 'event=end' "$out" | tail -1)"
	R[idle.$t.rss0_kb]=$r0
	R[idle.$t.rss1_kb]=$r1
	R[idle.$t.setup_cpu_s]=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
	if [ -n "$est" ] && [ "${R[idle.$t.established]:-0}" -gt 0 ]; then
		R[idle.$t.kib]=$(awk -v a="$r0" -v b="$r1" -v n="${R[idle.$t.established]}" \
			'BEGIN {printf "%.1f", (b - a) / n}')
	fi
	echo "idle label=idle.$t rss0_kb=$r0 rss1_kb=$r1 kib_per_session=${R[idle.$t.kib]:-} setup_cpu_s=${R[idle.$t.setup_cpu_s]}" >>"$RAW"
	log "idle $t: ${est:-not established} rss $r0 -> $r1 kB: ${R[idle.$t.kib]:-?} KiB/session"
	if ! alive "$t"; then
		R[idle.$t.status]=crashed
		echo "$t died during idle" >>"$WORK/incidents"
		[ "$t" = mailgate ] && restart_if_dead
	fi
}
for t in mailgate nginx-mail nginx-stream; do
	skip_if_late 90 "idle $t" && continue
	idle_figure "$t"
done

# ---------------------------------------------------------------------------
# The table

DURATION=$(( $(date +%s) - T0 ))
v() { echo "${R[$1]:-}"; }
# cell_login FIG TARGET: "rate/s, cpu ms/login"
cell_login() {
	local k=$1.$2 n
	[ -n "$(v "$k.status")" ] && { v "$k.status"; return; }
	n=$(v "$k.logins")
	[ -z "$n" ] && { echo "-"; return; }
	if [ "$2" = direct ]; then
		awk -v r="$(v "$k.rate")" -v e="$(v "$k.errors")" \
			'BEGIN {printf "%.0f/s%s", r, (e > 0 ? " (" e " err)" : "")}'
	else
		awk -v r="$(v "$k.rate")" -v c="$(v "$k.cpu_s")" -v n="$n" -v e="$(v "$k.errors")" \
			'BEGIN {printf "%.0f/s, %.2f ms%s", r, (n > 0 ? c * 1000 / n : 0), (e > 0 ? " (" e " err)" : "")}'
	fi
}
cpu_per_login() {	# ms
	awk -v c="$(v "$1.$2.cpu_s")" -v n="$(v "$1.$2.logins")" \
		'BEGIN {if (n > 0) printf "%.3f", c * 1000 / n}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b > 0) printf "%.2f", a / b}'; }
verdict() {	# verdict VALUE OP LIMIT
	awk -v x="$1" -v op="$2" -v l="$3" 'BEGIN {
		if (x == "") { print "n/a"; exit }
		ok = (op == "<=") ? (x <= l) : (op == ">=") ? (x >= l) : (x < l)
		print ok ? "met" : "MISSED" }'
}

ROWS=()
# row FIGURE MAILGATE DIRECT NGINX-MAIL NGINX-STREAM VERDICT; the column of
# mailgate-noreuse is NR (set for the logins rows, "-" elsewhere).
NR=-
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' "$1" "$2" "$NR" "$3" "$4" "$5" "$6")"); NR=-; }

for resume in fresh resumed; do
	for c in 1 32 256; do
		fig=login.$resume.c$c
		r=$(ratio "$(cpu_per_login "$fig" mailgate)" "$(cpu_per_login "$fig" nginx-mail)")
		if [ $resume = fresh ]; then lim=1.5; else lim=1.0; fi
		r2=$(ratio "$(cpu_per_login "$fig" mailgate-noreuse)" "$(cpu_per_login "$fig" nginx-mail)")
		NR="$(cell_login "$fig" mailgate-noreuse)${r2:+ (${r2}x)}"
		row "logins/s, proxy CPU/login: $resume TLS, c=$c" \
			"$(cell_login "$fig" mailgate)" "$(cell_login "$fig" direct)" \
			"$(cell_login "$fig" nginx-mail)" "$(cell_login "$fig" nginx-stream)" \
			"CPU/login vs nginx-mail ${r:-?}x (<= $lim): $(verdict "$r" "<=" $lim)"
	done
done
for c in 1 32; do
	fig=login.dove.c$c
	r=$(ratio "$(cpu_per_login "$fig" mailgate)" "$(cpu_per_login "$fig" nginx-mail)")
	r2=$(ratio "$(cpu_per_login "$fig" mailgate-noreuse)" "$(cpu_per_login "$fig" nginx-mail)")
	NR="$(cell_login "$fig" mailgate-noreuse)${r2:+ (${r2}x)}"
	row "logins/s, proxy CPU/login: Dovecot upstream, fresh TLS, c=$c" \
		"$(cell_login "$fig" mailgate)" "$(cell_login "$fig" direct)" \
		"$(cell_login "$fig" nginx-mail)" "$(cell_login "$fig" nginx-stream)" \
		"CPU/login vs nginx-mail ${r:-?}x (<= 1.5): $(verdict "$r" "<=" 1.5)"
done
lat() { [ -n "$(v "$1.$2.p50_ms")" ] && printf '%.2f / %.2f' "$(v "$1.$2.p50_ms")" "$(v "$1.$2.p99_ms")" || echo -; }
crowd_rate=$(awk -v e="$(v storm.crowd.errors)" -v s="$(v storm.crowd.seconds)" \
	'BEGIN {if (s > 0) printf "%.0f", e / s}')
row "cached login latency p50 / p99 ms while 32 clients fail logins as unknown users" \
	"$(lat storm mailgate)" "-" "-" "-" \
	"the crowd: ${crowd_rate:-?} failed logins/s, each a full password hash; unloaded: the next row"
row "login latency p50 / p99 ms (connect to tagged OK), fresh TLS, c=1" \
	"$(lat login.fresh.c1 mailgate)" "$(lat login.fresh.c1 direct)" \
	"$(lat login.fresh.c1 nginx-mail)" "$(lat login.fresh.c1 nginx-stream)" \
	"mailgate p50 < 5 ms: $(verdict "$(v login.fresh.c1.mailgate.p50_ms)" "<" 5)"
added_ms=$(awk -v a="$(v login.dove.c1.mailgate.p50_ms)" -v d="$(v login.dove.c1.direct.p50_ms)" \
	'BEGIN {if (a != "" && d != "") printf "%.2f", a - d}')
row "login latency p50 / p99 ms, Dovecot upstream, c=1" \
	"$(lat login.dove.c1 mailgate)" "$(lat login.dove.c1 direct)" \
	"$(lat login.dove.c1 nginx-mail)" "$(lat login.dove.c1 nginx-stream)" \
	"a new connection costs Dovecot's own login; mailgate: ${added_ms:-?} ms at p50 (below 0: the connection kept from the last LOGOUT spares it)"

mbps() {	# the best single transfer, and the mean over all of them
	if [ -z "$(v "$1.$2.mbps")" ]; then echo "${R[$1.$2.status]:--}"; return; fi
	printf '%.0f (mean %.0f)' "$(v "$1.$2.best_mbps")" "$(v "$1.$2.mbps")"
}
spgb() {	# proxy CPU seconds per GB relayed
	awk -v c="$(v "$1.$2.cpu_s")" -v b="$(v "$1.$2.bytes")" 'BEGIN {if (b > 0) printf "%.2f", c / (b / 1e9)}'
}
for f in fetch smtp; do
	if [ $f = fetch ]; then what="IMAP FETCH of $SIZE bytes"; else what="SMTP DATA of $SIZE bytes"; fi
	r1=$(ratio "$(v $f.mailgate.best_mbps)" "$(v $f.nginx-stream.best_mbps)")
	r2=$(ratio "$(v $f.mailgate.best_mbps)" "$(v $f.nginx-mail.best_mbps)")
	row "$what, MB/s: best of $FETCHES (mean)" "$(mbps $f mailgate)" "$(mbps $f direct)" "$(mbps $f nginx-mail)" \
		"$(mbps $f nginx-stream)" \
		"vs nginx-stream ${r1:-?}x (>= 1.2): $(verdict "$r1" ">=" 1.2); vs nginx-mail ${r2:-?}x (>= 1.0): $(verdict "$r2" ">=" 1.0)"
	row "$what, proxy CPU s/GB" "$(spgb $f mailgate)" "-" "$(spgb $f nginx-mail)" \
		"$(spgb $f nginx-stream)" "mailgate <= 2.0 s/GB: $(verdict "$(spgb $f mailgate)" "<=" 2.0)"
done
row "single-core crypto limit of a relay (openssl speed, 16 KiB blocks, one core): decrypt + encrypt, MB/s" \
	"" "" "" "" \
	"aes-128-gcm ${R[speed.aes-128-gcm.both]} (enc ${R[speed.aes-128-gcm.enc]}, dec ${R[speed.aes-128-gcm.dec]}); aes-256-gcm ${R[speed.aes-256-gcm.both]} (enc ${R[speed.aes-256-gcm.enc]}, dec ${R[speed.aes-256-gcm.dec]}); negotiated with the client: mailgate $(v fetch.mailgate.cipher), direct $(v fetch.direct.cipher), nginx-mail $(v fetch.nginx-mail.cipher), nginx-stream $(v fetch.nginx-stream.cipher)"

kib() { [ -n "$(v "idle.$1.kib")" ] && echo "$(v "idle.$1.kib") ($(v "idle.$1.established") sessions)" || echo "${R[idle.$1.status]:--}"; }
half=$(awk -v s="$(v idle.nginx-stream.kib)" 'BEGIN {if (s != "") printf "%.1f", s / 2}')
row "memory per idle IMAP session in IDLE, KiB (RSS growth / sessions)" \
	"$(kib mailgate)" "-" "$(kib nginx-mail)" "$(kib nginx-stream)" \
	"mailgate <= 32 KiB: $(verdict "$(v idle.mailgate.kib)" "<=" 32); <= half nginx-stream (${half:-?}): $(verdict "$(v idle.mailgate.kib)" "<=" "${half:-0}")"

noop() { [ -n "$(v "noop.$1.p50_us")" ] && printf '%.0f / %.0f' "$(v "noop.$1.p50_us")" "$(v "noop.$1.p99_us")" || echo "${R[noop.$1.status]:--}"; }
added() { awk -v a="$(v "noop.$1.p50_us")" -v d="$(v noop.direct.p50_us)" 'BEGIN {if (a != "" && d != "") printf "%.0f", a - d}'; }
row "NOOP round trip p50 / p99 us" "$(noop mailgate)" "$(noop direct)" "$(noop nginx-mail)" \
	"$(noop nginx-stream)" ""
am=$(added mailgate); an=$(added nginx-mail)
row "added NOOP latency p50 us (minus direct)" "$am" "0" "$an" "$(added nginx-stream)" \
	"mailgate <= 50 us: $(verdict "$am" "<=" 50); <= nginx-mail: $(verdict "$am" "<=" "${an:-0}")"

TABLE_HEAD='| figure | mailgate | mailgate, no kept connections | direct | nginx-mail | nginx-stream | target: ratio, verdict |
|---|---|---|---|---|---|---|'
TABLE=$(printf '%s\n' "$TABLE_HEAD" "${ROWS[@]}")

# rounds_cell FIG TARGET: CPU ms per login of the proxy in each round ("a / b / c").
rounds_cell() {
	local fig=$1 t=$2 r c n out=""
	for r in $(seq "$ROUNDS"); do
		c=${R[$fig.r$r.$t.cpu_s]:-}
		n=${R[$fig.r$r.$t.logins]:-0}
		if [ -n "$c" ] && [ "$n" -gt 0 ] 2>/dev/null; then
			out="$out${out:+ / }$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c * 1000 / n}')"
		else
			out="$out${out:+ / }-"
		fi
	done
	echo "$out"
}
RROWS=()
for fig in login.fresh.c1 login.fresh.c32 login.fresh.c256 login.resumed.c1 login.resumed.c32 \
    login.resumed.c256 login.dove.c1 login.dove.c32; do
	RROWS+=("$(printf '| %s | %s | %s | %s | %s |' "$fig" "$(rounds_cell "$fig" mailgate)" \
		"$(rounds_cell "$fig" mailgate-noreuse)" "$(rounds_cell "$fig" nginx-mail)" \
		"$(rounds_cell "$fig" nginx-stream)")")
done
ROUNDS_TABLE=$(printf '%s\n' '| logins figure | mailgate | mailgate, no kept connections | nginx-mail | nginx-stream |' \
	'|---|---|---|---|---|' "${RROWS[@]}")

# ---------------------------------------------------------------------------
# Machine, notes, RESULTS.md

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU time the hypervisor gave to others (steal) while we ran, in percent.
STEAL=$(printf '%s\n%s\n' "$STAT_START" "$(head -1 /proc/stat)" | awk '
	{ t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; st[NR] = $9 }
	END { d = tot[2] - tot[1]; printf "%.1f", (d > 0 ? 100 * (st[2] - st[1]) / d : 0) }')
MGHASH=$(grep -o 'hash=[a-z]*' "$MG_LOG" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//')
MGUPCIPHER=$(grep -o 'upstream connected .* cipher=[A-Z0-9_]*' "$MG_LOG" | grep -o 'cipher=[A-Z0-9_]*' |
	sort | uniq -c | awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//')
MGUPRES=$(grep -o 'upstream connected .*resumed=[a-z]*' "$MG_LOG" | grep -o 'resumed=[a-z]*' | sort | uniq -c |
	awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//')
# Logins that took a provider connection kept from an earlier LOGOUT, and those that made one.
MGREUSE="$(grep -c ' upstream reused ' "$MG_LOG" || true) reused, $(grep -c ' upstream connected ' "$MG_LOG" || true) new"
MGRSS=$(awk '/^mailgate_rss/ {sub(/when=/, "", $2); sub(/rss_kb=/, "", $4); printf "%s %s kB; ", $2, $4}' "$RAW")
MGLEVELS=$(awk '$2 ~ /^(debug|info|warn|error)$/ {n[$2]++} END {for (k in n) printf "%s=%d ", k, n[k]}' "$MG_LOG")
INCIDENTS=$(cat "$WORK/incidents" 2>/dev/null | paste -sd ';' - || true)
SKIPPED=$(cat "$WORK/skipped" 2>/dev/null | paste -sd ';' - || true)

IDLE_SENTENCE=""
[ -z "$IDLE_NOTE" ] || IDLE_SENTENCE=" Sessions $IDLE_NOTE (a proxied session takes 2 file descriptors, and the hard limit could not be raised here, not even by root)."
INCIDENT_LINE=""
[ -z "$INCIDENTS" ] || INCIDENT_LINE="**Incidents:** $INCIDENTS"
SKIPPED_LINE=""
[ -z "$SKIPPED" ] || SKIPPED_LINE="**Skipped (time budget):** $SKIPPED"
for k in "${!R[@]}"; do echo "$k=${R[$k]}"; done | sort >"$WORK/results.kv"

echo
echo "$TABLE"
echo
echo "machine: $(nproc) cores, $CPU_MODEL, Linux $(uname -r); commit $COMMIT; make bench took ${DURATION}s"
[ -z "$INCIDENTS" ] || echo "INCIDENTS: $INCIDENTS"
[ -z "$SKIPPED" ] || echo "skipped (time budget): $SKIPPED"
echo "mailgate log lines by level: $MGLEVELS; logins by hash: $MGHASH; upstream TLS: $MGUPRES"
echo "mailgate provider connections: $MGREUSE"
echo "mailgate RSS: $MGRSS"
echo "load average (1, 5, 15 min) at start: $LOAD_START; at end: $LOAD_END; CPU steal during the run: $STEAL%"

{
	cat <<EOF
# mailgate benchmark results

Written by \`make bench\` (bench/run.sh); the latest run replaces this file.

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- commit: $COMMIT
- machine: $(nproc) cores, $CPU_MODEL, Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM
- software: $(openssl version | cut -d' ' -f1-2), nginx $(nginx -v 2>&1 | sed 's|.*/||'), Dovecot $(dovecot --version | cut -d' ' -f1), libuv $(pkg-config --modversion libuv)
- duration of the run: ${DURATION} s
- load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $LOAD_END; CPU steal
  during the run: $STEAL% (other work on the machine shows here, and skews the figures)

## How to read it

Every figure is measured in the same run on the same machine, one after the other, through:
**mailgate** (TLS to the device, verified TLS to the upstream, SQLite store, auth cache, and
the provider connection kept for 60 s after an IMAP LOGOUT for the account's
next login, as configured by default);
**mailgate, no kept connections**: the same with \`timeouts.upstream_reuse: 0\` (logins figures
only), so that every login opens a provider connection: TLS and a login at the upstream;
**direct**: the same client straight to the upstream (the zero-overhead limit);
**nginx-mail**: nginx's mail proxy (TLS to the client, *plaintext* to the upstream, which it cannot
do otherwise), with \`auth_http\` answered by a location of the same nginx returning fixed headers;
**nginx-stream**: nginx's stream proxy with TLS on both sides and the upstream certificate verified.
The upstream is \`bench/fastimap\` (a minimal IMAP server and SMTP sink) except in the rows marked
Dovecot, which use a private Dovecot with real passwd-file authentication.

- Logins: \`loadgen logins\` with c concurrent clients for ${SECONDS_PER} s, ${ROUNDS} rounds per target
  (targets interleaved, their order reversed in every other round; the table shows the round
  with the least proxy CPU per login, direct: the highest rate); every login is
  connect, TLS 1.3 (fresh, or resumed with the last ticket that client got), greeting, LOGIN,
  tagged OK, LOGOUT, close. Through mailgate and nginx-mail each of the c clients logs in as a
  gateway user of its own (fast-0 ... fast-$(( LOGIN_USERS - 1 )), dove-0 ...), all with an account at the
  same upstream login, as an organisation's devices would (providers allow one account about 15
  connections, not 256); direct and nginx-stream log in with that upstream login itself.
  A cell reads "logins/s, CPU ms per login of the proxy processes"
  (mailgate: its one process, thread pool included; nginx: master and workers), from the
  run time of every thread before and after (/proc/PID/task/TID/schedstat, in nanoseconds,
  rather than the 10 ms ticks of utime + stime in /proc/PID/stat).
- Throughput: one client, FETCH of a ${SIZE}-byte message (read 16 KiB at a time), or SMTP DATA
  of ${SIZE} bytes, one transfer per session; ${FETCHES} rounds, each through every target in
  turn (the order reversed in every other round); MB = 10^6 bytes. The ratios use each target's
  fastest transfer (the least disturbed by anything else on the machine); CPU s/GB is the
  proxy's CPU over all of them (their logins included) per 10^9 bytes.
- Idle memory: a freshly started proxy, one warm-up login, then ${IDLE_N} sessions logged in and in
  IDLE; (RSS 3 s after the last one is established - RSS before) / sessions.$IDLE_SENTENCE
- NOOP: one session, ${NOOPS} NOOP round trips; "added" is the p50 minus the direct p50.
- Failed-login crowd: 32 clients log in for 8 s as unknown users (a new name at every login)
  with a wrong password, each login costing mailgate a full password hash; meanwhile one client
  logs in for 5 s, again and again, as a user whose credential is cached (brute-force delays are
  off in this mailgate's configuration, so that only the hashing is measured).
- The machine has $(nproc) cores and the load generator, the upstream and the proxy share them;
  nothing is pinned. Logins/s therefore measure the whole machine; CPU per login and CPU per GB
  are the comparable per-proxy costs. On this kind of shared virtual machine single figures
  moved by 10-30 % between runs of the same code (NOOP latency and throughput the most, idle
  memory hardly at all): compare ratios within one run, and count instructions (callgrind) to
  decide between two versions of the code.

## Results

$TABLE

Proxy CPU ms per login in each round, in the order run (the table above takes each target's
cheapest round; the spread is the noise of this machine during the run):

$ROUNDS_TABLE

$INCIDENT_LINE
$SKIPPED_LINE

mailgate during the run: log lines by level: $MGLEVELS; logins by how the password was checked:
$MGHASH; upstream TLS sessions: $MGUPRES; upstream suites: $MGUPCIPHER; provider connections
for IMAP logins: $MGREUSE; RSS snapshots: $MGRSS

## Raw results (key=value lines from loadgen and the script)

\`\`\`
$(cat "$RAW")
\`\`\`
EOF
} >"$RESULTS"
log "wrote $RESULTS"
