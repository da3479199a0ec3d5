"""
`mailgate import dovecot-passwd FILE`: users come over from a Dovecot
passwd-file with their existing crypt hashes, so nobody resets a password:
once the admin stores their app password, their devices log in through the
gateway with the password they always had. Existing users are left alone;
schemes the gateway cannot verify ({PLAIN}, {SSHA}) are skipped with a
FILE:LINE message.
"""

import os
import re
import secrets
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated, still in 3.11; the hashes a Dovecot admin has

import creds
from creds import (EXIT_OK, IMAP_AUTHFAILED, IMAP_OK, assert_all_work, cli_json, cli_status,
                   fresh_name, imap_login, out)
from harness import ALICE, ALICE_GW_PASSWORD


@pytest.fixture(scope="module")
def gateway(workdir, ca, dovecot, postfix, request):
    """conftest's gateway, with brute-force delays off (see creds.NO_BRUTE_FORCE)."""
    yield from creds.module_gateway(workdir, ca, dovecot, postfix, request)


def sha512(pw):
    return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512))


def sha256(pw):
    return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA256))


def bcrypt_2y(pw):
    # Dovecot's `doveadm pw -s BLF-CRYPT` writes $2y$; python writes $2b$,
    # the same algorithm. Cost 4 keeps the test fast.
    h = crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    assert h.startswith("$2b$04$"), h
    return "$2y$" + h[4:]


def test_import_dovecot_passwd(gateway, dovecot):
    people = {}
    for scheme in ("sha512", "blf", "crypt", "bare"):
        people[scheme] = (fresh_name("imp"), "pw-" + secrets.token_hex(6))
    (a, pa), (b, pb), (c, pc), (d, pd) = (people[k] for k in ("sha512", "blf", "crypt", "bare"))
    plain_user, plain_pw = fresh_name("imp"), "plain-" + secrets.token_hex(6)
    ssha_user = fresh_name("imp")
    lines = [
        "# users of the old server",
        "%s:{SHA512-CRYPT}%s:1000:1000::/home/%s::userdb_quota_rule=*:storage=1G" % (a, sha512(pa), a),
        "%s:{BLF-CRYPT}%s" % (b, bcrypt_2y(pb)),
        "",
        "%s:{CRYPT}%s::::::" % (c, sha256(pc)),
        "%s:%s" % (d, sha512(pd)),
        "%s:{SHA512-CRYPT}%s" % (ALICE, sha512("not-alices-password")),
        "%s:{PLAIN}%s" % (plain_user, plain_pw),
        "%s:{SSHA}%s" % (ssha_user, "W6ph5Mm5Pz8GgiULbPgzG37mj9g5Q0wW"),
    ]
    path = os.path.join(gateway.dir, "import.passwd")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    lineno = {l.split(":", 1)[0]: i + 1 for i, l in enumerate(lines) if ":" in l}

    p = cli_status(gateway, "import", "dovecot-passwd", path)
    assert p.returncode == EXIT_OK, out(p)
    err = p.stderr.decode("utf-8", "replace")
    for user in (plain_user, ssha_user):
        assert re.search(r"(?m)^.*%s:%d\b" % (re.escape(path), lineno[user]), err), \
            "no %s:%d message for %s\n%s" % (path, lineno[user], user, out(p))
    assert plain_pw not in err and plain_pw not in p.stdout.decode(), out(p)

    names = {r.get("name") or r.get("user") for r in cli_json(gateway, "user", "list")}
    assert {a, b, c, d} <= names, names
    assert plain_user not in names and ssha_user not in names, names

    # The existing user kept its own password.
    assert IMAP_OK.match(imap_login(gateway, ALICE, ALICE_GW_PASSWORD))
    assert IMAP_AUTHFAILED.match(imap_login(gateway, ALICE, "not-alices-password"))

    # Each imported user, once given an account, logs in with the password
    # from the old server, and only with it.
    for name, pw in ((a, pa), (b, pb), (c, pc), (d, pd)):
        login = "%s@example.test" % name
        app = "app-" + secrets.token_hex(8)
        dovecot.add_user(login, app)
        gateway.set_account(name, "testprov", login, app)
        t = imap_login(gateway, name, pw)
        assert IMAP_OK.match(t), "imported user %s: %r" % (name, t)
        assert IMAP_AUTHFAILED.match(imap_login(gateway, name, pw + "x"))
    assert_all_work(gateway, b, pb)

    # Importing the same file again adds nobody and changes nobody.
    p = cli_status(gateway, "import", "dovecot-passwd", path)
    assert p.returncode == EXIT_OK, out(p)
    assert IMAP_OK.match(imap_login(gateway, a, pa))


def test_import_missing_file(gateway):
    p = cli_status(gateway, "import", "dovecot-passwd", os.path.join(gateway.dir, "no-such-file"))
    assert p.returncode != EXIT_OK, out(p)
    assert b"no-such-file" in p.stderr, out(p)
