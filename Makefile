# mailgate - a mail gateway. See README.md.
#
#   make            build build/mailgate
#   make run        run the gateway in the foreground with conf/dev.yaml
#   make test       install test dependencies, build, run every test
#   make asan       the same tests against an AddressSanitizer + UBSan build
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS
#   make install    install the binary and example configuration
#   make clean

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
PKG_CONFIG ?= pkg-config
PYTEST	?= /usr/bin/python3 -m pytest
FUZZ_SECONDS ?= 60

PKGS	 = libuv openssl yaml-0.1 sqlite3 libxcrypt libpq
WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fno-strict-aliasing $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LIBS	 = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread

SRCS	 = $(sort $(wildcard src/*.c))
LIBSRCS	 = $(filter-out src/main.c,$(SRCS))
LIBOBJS	 = $(LIBSRCS:src/%.c=$(BUILD)/obj/%.o)
UNITSRCS = $(sort $(wildcard tests/unit/test_*.c))
UNITBINS = $(UNITSRCS:tests/unit/%.c=$(BUILD)/%)
FUZZSRCS = $(sort $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all deps-build deps-test run test unit unit-pg configtest e2e asan fuzz install clean bench

all: deps-build $(BUILD)/mailgate

deps-build:
	@sh tests/deps.sh build

deps-test:
	@sh tests/deps.sh test

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/libmailgate.a: $(LIBOBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/mailgate: $(BUILD)/obj/main.o $(BUILD)/libmailgate.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/test_%: tests/unit/test_%.c $(BUILD)/libmailgate.a
	$(CC) $(ALL_CFLAGS) -Isrc -Wno-missing-prototypes -o $@ $< $(BUILD)/libmailgate.a $(LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

# test_store refers to the PostgreSQL backend only weakly (it runs a second
# pass when MG_TEST_STORE_PG is set): link it in explicitly.
$(BUILD)/test_store: tests/unit/test_store.c $(BUILD)/libmailgate.a $(BUILD)/obj/store_pg.o
	$(CC) $(ALL_CFLAGS) -Isrc -Wno-missing-prototypes -o $@ $< $(BUILD)/obj/store_pg.o $(BUILD)/libmailgate.a $(LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

# The gateway with the built-in development defaults: unprivileged ports on
# loopback, a self-signed certificate and master key made on first run.
run: all
	$(BUILD)/mailgate init -c conf/dev.yaml
	exec $(BUILD)/mailgate run -c conf/dev.yaml

test: deps-test
	$(MAKE) $(BUILD)/mailgate $(UNITBINS)
	$(MAKE) unit unit-pg configtest e2e

unit: $(UNITBINS)
	@set -e; for t in $(UNITBINS); do echo "== $$t"; $$t; done

# The store tests again, against a private PostgreSQL started for them.
unit-pg: $(BUILD)/test_store $(BUILD)/test_store_pg
	MG_TEST_PG_DATABASES=24 sh tests/unit/run_store_pg.sh $(BUILD)/test_store $(BUILD)/test_store_pg

configtest: $(BUILD)/mailgate
	sh tests/config/run.sh $(BUILD)/mailgate

e2e: $(BUILD)/mailgate
	MAILGATE_BIN=$(CURDIR)/$(BUILD)/mailgate $(PYTEST) -q -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

# The sanitizer pass holds the 2,000-session load for 10 s rather than 60:
# what it looks for (leaks, bad accesses) shows in the first seconds. A small
# quarantine keeps freed memory from piling up in ASan's allocator, which the
# memory-ceiling tests would otherwise measure; MG_SANITIZER tells the load
# test that memory does not return to the system under ASan.
asan: deps-test
	ASAN_OPTIONS=quarantine_size_mb=4:thread_local_quarantine_size_kb=256 MG_SANITIZER=asan \
	MG_LOAD_SECONDS=10 $(MAKE) BUILD=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

fuzz: deps-test
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

bench:
	BUILD=$(BUILD) bash bench/run.sh

install: $(BUILD)/mailgate
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/mailgate/conf
	install -m 755 $(BUILD)/mailgate $(DESTDIR)$(PREFIX)/sbin/mailgate
	install -m 644 conf/*.yaml $(DESTDIR)$(PREFIX)/share/mailgate/conf/

clean:
	rm -rf build build-asan build-fuzz
