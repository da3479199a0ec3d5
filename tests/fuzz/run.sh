#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer target in build-fuzz/ and
# runs each for SECONDS seconds on a copy of its seed corpus.
#
# Usage: sh tests/fuzz/run.sh [SECONDS [TARGET...]]
#        (default 60 seconds; every target, or only those named, e.g. fuzz_config)
#
# A target names the sources it needs in a comment line of its own:
#	/* fuzz-sources: src/parse_imap.c */
# and, when it needs libraries, their pkg-config names (for their -I flags
# and their libraries) and any other linker arguments, each line optional:
#	/* fuzz-pkgs: yaml-0.1 openssl libpq */
#	/* fuzz-libs: -lm */
# Its seeds are in tests/fuzz/corpus/<target>/ and its dictionary, if any,
# in tests/fuzz/<target>.dict. What a run adds to the corpus stays in
# build-fuzz/corpus/<target>/ and crashes go to build-fuzz/crashes/<target>/.
# Exits non-zero if a target does not build or libFuzzer reports a crash,
# leak, timeout or out-of-memory. Needs clang and libclang-rt-*-dev.
set -eu

secs=${1:-60}
case $secs in
'' | *[!0-9]*) echo "usage: $0 [SECONDS [TARGET...]]" >&2; exit 2 ;;
esac
if [ $# -gt 0 ]; then
	shift
fi
only=" $* "

cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
OUT=build-fuzz
# -iquote, not -I: our headers are included with quotes, and a src/ header
# must never stand in for a system header of the same name.
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Werror -iquote src"

mkdir -p "$OUT"
failed=""
for src in tests/fuzz/fuzz_*.c; do
	[ -e "$src" ] || continue
	t=$(basename "$src" .c)
	case $only in
	"  " | *" $t "*) ;;
	*) continue ;;
	esac
	deps=$(sed -n 's|^/\* *fuzz-sources: *\(.*[^ ]\) *\*/ *$|\1|p' "$src")
	pkgs=$(sed -n 's|^/\* *fuzz-pkgs: *\(.*[^ ]\) *\*/ *$|\1|p' "$src")
	libs=$(sed -n 's|^/\* *fuzz-libs: *\(.*[^ ]\) *\*/ *$|\1|p' "$src")
	echo "== $t: building with ${deps:-no other sources}${pkgs:+ and $pkgs}${libs:+ $libs}"
	pkgflags=""
	# shellcheck disable=SC2086
	if [ -n "$pkgs" ] && ! pkgflags=$(${PKG_CONFIG:-pkg-config} --cflags --libs $pkgs); then
		failed="$failed $t(build)"
		continue
	fi
	# shellcheck disable=SC2086
	if ! $CLANG $CFLAGS -o "$OUT/$t" "$src" $deps $pkgflags $libs; then
		failed="$failed $t(build)"
		continue
	fi

	corpus="$OUT/corpus/$t"
	crashes="$OUT/crashes/$t"
	mkdir -p "$corpus" "$crashes"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp -p "tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
	fi
	dict=""
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"

	echo "== $t: running for ${secs}s"
	# shellcheck disable=SC2086
	if ! "$OUT/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$crashes/" $dict \
	    "$corpus" >"$OUT/$t.log" 2>&1; then
		tail -n 60 "$OUT/$t.log" >&2
		failed="$failed $t"
		continue
	fi
	grep -E '^stat::number_of_executed_units|^Done' "$OUT/$t.log" || true
done

if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (logs and crashes in $OUT/)" >&2
	exit 1
fi
echo "fuzz: all targets ran ${secs}s without a finding"
