"""
Fixtures for mailgate's end-to-end tests.

  workdir   session  a short temporary directory under /tmp (mode 755)
  ca        session  the test CAs and certificates (harness.TestCA)
  dovecot   session  the provider: a private Dovecot on 127.0.0.2
  postfix   session  the provider's submission server: a private Postfix on
                     127.0.0.2 (SASL through Dovecot, delivery into Dovecot)
  gateway   module   a running mailgate whose user "alice" has an account
                     at "testprov" (Dovecot's alice@example.test)
  make_user function a factory: a fresh gateway user with a fresh provider
                     account, for tests that change state
  postgres  session  a private PostgreSQL server on 127.0.0.1
                     (harness.Postgres): .conninfo of its database
                     "mailgate", create_database(name) -> conninfo, stop()
                     and start() again on the same data and port; started
                     only when a test asks for it

Set MG_E2E_KEEP=1 to keep the temporary directory (logs, configs) after the
run.
"""

import itertools
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass

import pytest

import harness
from harness import (ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, BOB_APP_PASSWORD,
                     BOB_LOGIN, UTF8_ADDR, UTF8_APP_PASSWORD, UTF8_LOGIN, Dovecot, Gateway,
                     Postfix, Postgres, TestCA)


_names = itertools.count(1)


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="mg-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    if os.environ.get("MG_E2E_KEEP"):
        print("\nmailgate e2e: kept %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def ca(workdir):
    d = os.path.join(workdir, "ca")
    os.makedirs(d, mode=0o755)
    return TestCA(d)


@pytest.fixture(scope="session")
def dovecot(workdir, ca):
    d = os.path.join(workdir, "dc")
    os.makedirs(d, mode=0o755)
    dc = Dovecot(d, ca)
    dc.passwords[ALICE_LOGIN] = ALICE_APP_PASSWORD
    dc.passwords[BOB_LOGIN] = BOB_APP_PASSWORD
    dc.passwords[UTF8_LOGIN] = UTF8_APP_PASSWORD
    try:
        dc.start()
        yield dc
    finally:
        dc.stop()


@pytest.fixture(scope="session")
def postfix(workdir, ca, dovecot):
    d = os.path.join(workdir, "pf")
    pf = Postfix(d, ca, dovecot, utf8_aliases={UTF8_ADDR: UTF8_LOGIN})
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()


@pytest.fixture(scope="session")
def postgres(workdir):
    if not harness.postgres_available():
        pytest.skip("PostgreSQL is not installed (sh tests/deps.sh test installs it)")
    pg = Postgres(os.path.join(workdir, "pg"))
    try:
        pg.start()
        yield pg
    finally:
        # Whatever state a test left it in: stop is a no-op when it is down.
        pg.stop()


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    d = os.path.join(workdir, "gw%d" % next(_names))
    gw = Gateway(d, ca, dovecot, postfix)
    error = None
    try:
        gw.start()
        gw.add_user(ALICE, ALICE_GW_PASSWORD)
        gw.set_account(ALICE, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)
    except harness.HarnessError as e:
        error = str(e)
    if error is not None:
        gw.stop()
        pytest.fail("gateway fixture: %s" % error, pytrace=False)
    try:
        yield gw
    finally:
        gw.stop()
    # A clean stop is part of every test module: SIGTERM must end the loop
    # with no handle left open (mailgate exits 1 when uv_loop_close() fails),
    # and a sanitizer build must have reported nothing, leaks included.
    log = gw.log_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "loop still had open handles"):
        assert marker not in log, "gateway log has %r:\n%s" % (marker, harness.tail(log))
    assert gw.proc.returncode == 0, "gateway exited with %s:\n%s" % (gw.proc.returncode,
                                                                   harness.tail(log))


@dataclass
class User:
    name: str		# the gateway user name a device logs in with
    password: str	# the gateway password
    provider: str	# the provider of its one account
    login: str		# the upstream login at that provider
    app_password: str	# the provider app password only mailgate holds


@pytest.fixture
def make_user(gateway, dovecot):
    """
    make_user(provider="testprov", upstream=True) -> User

    Creates a Dovecot user (unless upstream=False, for providers that never
    see a login), a gateway user, and the gateway's account for it. Every
    call uses fresh names, so tests that rotate passwords or delete users
    do not disturb each other.
    """

    def make(provider="testprov", upstream=True, with_account=True):
        n = next(_names)
        name = "u%d" % n
        login = "%s@example.test" % name
        app = "app-" + secrets.token_hex(8)
        pw = "gw-" + secrets.token_hex(8)
        if upstream:
            dovecot.add_user(login, app)
        gateway.add_user(name, pw)
        if with_account:
            gateway.set_account(name, provider, login, app)
        return User(name, pw, provider, login, app)

    return make
