#!/bin/sh
# Installs, from Debian's packages, what building and testing mailgate needs.
# Safe to run again: it only calls apt-get when something is missing.
# Usage: tests/deps.sh build|test|bench
set -eu

build_pkgs="gcc make pkg-config libuv1-dev libssl-dev libyaml-dev libsqlite3-dev libpq-dev libcrypt-dev
 openssl"
# The provider stack (a private Dovecot and a private Postfix) and the real
# mail clients the end-to-end tests drive. swaks needs libnet-ssleay-perl for
# TLS and clang needs libclang-rt-14-dev for the sanitizers and libFuzzer
# (both only Recommends, which --no-install-recommends leaves out). The
# PostgreSQL store's tests run a private server (tests/pg.sh): postgresql
# brings the server binaries (postgresql-15 on Debian 12) and psql.
test_pkgs="$build_pkgs libcmocka-dev python3 python3-pytest dovecot-core dovecot-imapd dovecot-pop3d
 dovecot-lmtpd postfix curl swaks libnet-ssleay-perl msmtp fetchmail clang libclang-rt-14-dev iproute2
 postgresql"
# The benchmark (bench/run.sh, `make bench`): nginx's mail and stream proxies
# as the reference, a real Dovecot as one upstream, and the tools the script
# reads the machine with (ss from iproute2, procps). The stream module is a
# separate package in Debian 12, like the mail module.
bench_pkgs="$build_pkgs nginx libnginx-mod-mail libnginx-mod-stream dovecot-core dovecot-imapd
 iproute2 procps"

case "${1:-build}" in
build) want=$build_pkgs ;;
test) want=$test_pkgs ;;
bench) want=$bench_pkgs ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "mailgate: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 1
fi

echo "mailgate: installing$missing" >&2
# Installing Dovecot would start its default service; a policy-rc.d that
# answers 101 keeps it (and anything else) from starting during the install.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to set up the system's mailer; the tests run a private
# instance of their own, so the answer is "No configuration" (no default
# instance, no /etc/postfix/main.cf). msmtp asks about AppArmor: no.
debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string mailgate-test.invalid
msmtp msmtp/apparmor boolean false
EOF
apt-get update -q >&2 || true
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
