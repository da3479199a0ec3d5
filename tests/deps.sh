#!/bin/sh
# Installs, from Debian's packages, what building and testing mailgate needs.
# Safe to run again: it only calls apt-get when something is missing.
# Usage: tests/deps.sh build|test
set -eu

build_pkgs="gcc make pkg-config libuv1-dev libssl-dev libyaml-dev libsqlite3-dev libcrypt-dev openssl"
test_pkgs="$build_pkgs libcmocka-dev python3 python3-pytest dovecot-core dovecot-imapd dovecot-pop3d curl clang iproute2"

case "${1:-build}" in
build) want=$build_pkgs ;;
test) want=$test_pkgs ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
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
apt-get update -q >&2 || true
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
