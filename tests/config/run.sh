#!/bin/sh
# run.sh - checks configurations with `mailgate check`, end to end.
#
# Usage: sh tests/config/run.sh path/to/mailgate   (`make configtest` does this)
#
# bad/*.yaml   `mailgate check -c FILE` must exit 2 and print on stderr exactly
#              the case's .expected file. Messages name files as they were
#              given on the command line, so every case runs from the
#              repository root as tests/config/bad/NAME.yaml. Files under
#              bad/inc/ are included by cases; they are not cases themselves.
# good/*.yaml  good/ is copied to a temporary directory that also gets a pki/
#              made with openssl (a self-signed certificate, its key, a master
#              key and a device key); `mailgate check -c COPY` must exit 0, print "COPY: ok"
#              and nothing on stderr. The good cases thus go through the file
#              checks too, not only the loader.
# conf/*.yaml  the shipped configurations must load: `mailgate check
#              --syntax-only -c FILE` must exit 0 (their certificates do not
#              exist on a test machine). A file without a top-level `listen:`
#              is an include (providers.yaml); the files including it cover it.
#
# One line per case, then a last line "config: N passed, M failed"; the exit
# status is 1 when anything failed.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 path/to/mailgate" >&2
	exit 2
fi
case $1 in
/*) bin=$1 ;;
*) bin=$(pwd)/$1 ;;
esac
if [ ! -x "$bin" ]; then
	echo "$0: $1: not an executable" >&2
	exit 2
fi

root=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
cd "$root" || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mg_configtest.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT PIPE TERM

passed=0
failed=0

pass() {
	passed=$((passed + 1))
	echo "ok   $1"
}

# fail NAME WHY [FILE...]: the files (output, diffs) are shown indented.
fail() {
	name=$1
	why=$2
	shift 2
	failed=$((failed + 1))
	echo "FAIL $name: $why"
	for f in "$@"; do
		sed 's/^/	/' "$f"
	done
}

# Bad cases: exit status 2 and the exact diagnostics.
for yaml in tests/config/bad/*.yaml; do
	[ -e "$yaml" ] || continue
	expected=${yaml%.yaml}.expected
	if [ ! -f "$expected" ]; then
		fail "$yaml" "no $expected"
		continue
	fi
	"$bin" check -c "$yaml" >"$tmp/out" 2>"$tmp/err"
	status=$?
	if [ "$status" -ne 2 ]; then
		fail "$yaml" "exit status $status, expected 2; stderr:" "$tmp/err"
	elif ! cmp -s "$expected" "$tmp/err"; then
		diff -u "$expected" "$tmp/err" >"$tmp/diff"
		fail "$yaml" "stderr differs from $expected:" "$tmp/diff"
	else
		pass "$yaml"
	fi
done

# Good cases, with real files to check.
good="$tmp/good"
pki_ok=0
if cp -R tests/config/good "$good" && mkdir -p "$good/pki" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=localhost -days 2 -keyout "$good/pki/key.pem" \
    -out "$good/pki/cert.pem" >"$tmp/openssl" 2>&1 &&
    head -c 32 /dev/urandom >"$good/pki/master.key" &&
    head -c 32 /dev/urandom >"$good/pki/device.key" &&
    chmod 600 "$good/pki/master.key" "$good/pki/device.key" "$good/pki/key.pem"; then
	pki_ok=1
fi
for yaml in tests/config/good/*.yaml; do
	[ -e "$yaml" ] || continue
	if [ "$pki_ok" -ne 1 ]; then
		fail "$yaml" "could not set up the temporary copy and pki/:" "$tmp/openssl"
		continue
	fi
	copy="$good/${yaml#tests/config/good/}"
	"$bin" check -c "$copy" >"$tmp/out" 2>"$tmp/err"
	status=$?
	echo "$copy: ok" >"$tmp/want"
	if [ "$status" -ne 0 ]; then
		fail "$yaml" "exit status $status, expected 0; stderr:" "$tmp/err"
	elif [ -s "$tmp/err" ]; then
		fail "$yaml" "unexpected stderr:" "$tmp/err"
	elif ! cmp -s "$tmp/want" "$tmp/out"; then
		fail "$yaml" "stdout is not \"$copy: ok\":" "$tmp/out"
	else
		pass "$yaml"
	fi
done

# The shipped configurations.
for yaml in conf/*.yaml; do
	[ -e "$yaml" ] || continue
	grep -q '^listen:' "$yaml" || continue
	"$bin" check --syntax-only -c "$yaml" >"$tmp/out" 2>"$tmp/err"
	status=$?
	if [ "$status" -ne 0 ]; then
		fail "$yaml" "exit status $status, expected 0; stderr:" "$tmp/err"
	elif [ -s "$tmp/err" ]; then
		fail "$yaml" "unexpected stderr:" "$tmp/err"
	else
		pass "$yaml (--syntax-only)"
	fi
done

echo "config: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
