"""
Helpers for the end-to-end tests of the credentials an organisation runs:
device passwords, live revocation, the auth cache, master key rotation, the
audit trail, imported users, several accounts per user and the PostgreSQL
store.

Everything here builds on harness.py and never sleeps to synchronise: a
wait is on a log line, a reply, a socket closing or a CLI answer, with a
deadline.
"""

import contextlib
import json
import os
import re
import secrets
import socket
import ssl
import time

import harness
from harness import HarnessError, read_text, tail, wait_for

# The exit statuses of the admin CLI.
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOTFOUND, EXIT_EXISTS = 0, 1, 2, 3, 4

# A device password: 32 base32 characters in groups of 4 (160 bits).
DEVICE_PASSWORD = re.compile(r"\A[a-z2-7]{4}(?:-[a-z2-7]{4}){7}\Z", re.I)

# How long a revoking change may take to end a live session (the spec's
# bound: the gateway polls the store every 2 s by default).
REVOKE_BOUND = 5.0
# How long the tests wait for a close before failing (more than the bound,
# so that a late close is reported with its delay, not as a timeout).
CLOSE_DEADLINE = 8.0

# Protocol replies.
IMAP_OK = re.compile(rb"^\S+ OK")
IMAP_AUTHFAILED = re.compile(rb"^\S+ NO \[AUTHENTICATIONFAILED\]")
IMAP_UNAVAILABLE = re.compile(rb"^\S+ NO \[UNAVAILABLE\]")
POP3_AUTH = re.compile(rb"^-ERR \[AUTH\]")
POP3_TEMP = re.compile(rb"^-ERR \[SYS/TEMP\]")


def out(p):
    """A CompletedProcess's stdout and stderr as text, for messages."""
    return ("exit %d\nstdout: %s\nstderr: %s"
            % (p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace")))


_seq = iter(range(1, 1 << 30))


def fresh_name(prefix="c"):
    """A user name no other test (nor an earlier run on a shared store) uses."""
    return "%s%s%d" % (prefix, secrets.token_hex(2), next(_seq))


# --------------------------------------------------------------------------
# The admin CLI


def cli_json(gw, *args):
    """Runs a CLI command with --json, which must succeed; its parsed output."""
    p = gw.cli(*(list(args) + ["--json"]), check=False)
    assert p.returncode == EXIT_OK, out(p)
    try:
        return json.loads(p.stdout.decode("utf-8"))
    except ValueError as e:
        raise AssertionError("%s --json printed no JSON (%s)\n%s" % (" ".join(args), e, out(p)))


def cli_status(gw, *args, input=None):
    """Runs a CLI command that may fail; returns the CompletedProcess."""
    return gw.cli(*args, input=input, check=False)


def device_add(gw, user, label, scopes=None, account=None):
    """`device add` (plain output); returns the device password."""
    argv = ["device", "add", user, label]
    if scopes is not None:
        argv += ["--scopes", scopes]
    if account is not None:
        argv += ["--account", account]
    p = gw.cli(*argv, check=False)
    assert p.returncode == EXIT_OK, out(p)
    pw = p.stdout.decode("utf-8").strip()
    assert DEVICE_PASSWORD.match(pw), "device add printed %r, not a device password\n%s" % (pw, out(p))
    return pw


def device_revoke(gw, user, label):
    p = gw.cli("device", "revoke", user, label, check=False)
    assert p.returncode == EXIT_OK, out(p)


def devices(gw, user=None):
    """`device list [USER] --json` as {(user, label): entry}."""
    args = ["device", "list"] + ([user] if user else [])
    rows = cli_json(gw, *args)
    assert isinstance(rows, list), rows
    return {(r.get("user", user), r["label"]): r for r in rows}


def set_password(gw, user, password):
    p = gw.cli("user", "passwd", user, "--password-stdin", input=password + "\n", check=False)
    assert p.returncode == EXIT_OK, out(p)


class Person:
    """A gateway user with one account at a provider backed by Dovecot."""

    def __init__(self, name, password, provider, login, app_password):
        self.name = name
        self.password = password
        self.provider = provider
        self.login = login
        self.app_password = app_password

    def secrets(self):
        return [self.password, self.app_password]


def new_person(gw, dovecot, provider="testprov", with_account=True, upstream=True):
    """
    A fresh Dovecot user and gateway user with an account for it; like
    conftest's make_user, but for any gateway (the PostgreSQL ones too).
    """
    name = fresh_name()
    login = "%s@example.test" % name
    app = "app-" + secrets.token_hex(8)
    pw = "gw-" + secrets.token_hex(8)
    if upstream:
        dovecot.add_user(login, app)
    gw.add_user(name, pw)
    if with_account:
        gw.set_account(name, provider, login, app)
    return Person(name, pw, provider, login, app)


# --------------------------------------------------------------------------
# One login per connection, on each protocol: the first reply to the login.


def imap_login(gw, user, password, select=True):
    """IMAP LOGIN (quoted strings); the tagged reply. SELECTs INBOX when OK."""
    c = gw.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN %s %s" % (quote(user), quote(password)))
        if select and tagged.startswith(b"a OK"):
            _, sel = c.command("b", "SELECT INBOX")
            assert sel.startswith(b"b OK"), c.dump()
        return tagged
    finally:
        c.close()


def pop3_login(gw, user, password):
    """POP3 USER/PASS; the reply to PASS (STAT checked when +OK)."""
    c = gw.raw_pop3("implicit")
    try:
        status = c.login(user, password)
        if status.startswith(b"+OK"):
            stat = c.command("STAT")
            assert stat.startswith(b"+OK "), c.dump()
            c.command("QUIT")
        return status
    finally:
        c.close()


def smtp_login(gw, user, password):
    """SMTP AUTH PLAIN after STARTTLS; (code, text)."""
    c = gw.raw_smtp("starttls")
    try:
        c.ehlo()
        code, lines = c.auth_plain(user, password)
        return code, " ".join(lines)
    finally:
        c.close()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_all_work(gw, user, password):
    t = imap_login(gw, user, password)
    assert IMAP_OK.match(t), "IMAP login of %s: %r" % (user, t)
    s = pop3_login(gw, user, password)
    assert s.startswith(b"+OK"), "POP3 login of %s: %r" % (user, s)
    code, text = smtp_login(gw, user, password)
    assert code == 235, "SMTP login of %s: %d %s" % (user, code, text)


def assert_all_refused(gw, user, password):
    """The bad-credential reply on all three protocols."""
    t = imap_login(gw, user, password)
    assert IMAP_AUTHFAILED.match(t), "IMAP login of %s: %r" % (user, t)
    s = pop3_login(gw, user, password)
    assert POP3_AUTH.match(s), "POP3 login of %s: %r" % (user, s)
    code, text = smtp_login(gw, user, password)
    assert (code, text[:5]) == (535, "5.7.8"), "SMTP login of %s: %d %s" % (user, code, text)


def assert_all_tempfail(gw, user, password):
    """The temporary-failure reply on all three protocols."""
    t = imap_login(gw, user, password)
    assert IMAP_UNAVAILABLE.match(t), "IMAP login of %s: %r" % (user, t)
    s = pop3_login(gw, user, password)
    assert POP3_TEMP.match(s), "POP3 login of %s: %r" % (user, s)
    code, text = smtp_login(gw, user, password)
    assert (code, text[:5]) == (454, "4.7.0"), "SMTP login of %s: %d %s" % (user, code, text)


# --------------------------------------------------------------------------
# Live sessions


class Live:
    """
    A logged-in session kept open: IMAP (SELECTed INBOX, then IDLE unless
    idle=False), POP3 (after PASS) or SMTP (after 235). alive() proves the
    session still relays; wait_closed() waits for the gateway to close it.
    """

    def __init__(self, gw, user, password, proto="imap", idle=True):
        self.proto = proto
        self.user = user
        self.idling = False
        self.n = 0
        if proto == "imap":
            self.c = gw.raw("implicit")
            _, t = self.c.command("a", "LOGIN %s %s" % (quote(user), quote(password)))
            assert t.startswith(b"a OK"), self.c.dump()
            _, t = self.c.command("b", "SELECT INBOX")
            assert t.startswith(b"b OK"), self.c.dump()
            if idle:
                self.idle()
        elif proto == "pop3":
            self.c = gw.raw_pop3("implicit")
            s = self.c.login(user, password)
            assert s.startswith(b"+OK"), self.c.dump()
        elif proto == "smtp":
            self.c = gw.raw_smtp("implicit")
            self.c.ehlo()
            code, _ = self.c.auth_plain(user, password)
            assert code == 235, self.c.dump()
        else:
            raise ValueError(proto)

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def idle(self):
        self.c.send(b"i IDLE\r\n")
        line = self.c.readline()
        while not line.startswith(b"+"):
            assert not line.startswith(b"i "), "IDLE refused: %s" % self.c.dump()
            line = self.c.readline()
        self.idling = True

    def done(self):
        self.c.send(b"DONE\r\n")
        _, t = self.c.read_until_tagged("i")
        assert t.startswith(b"i OK"), self.c.dump()
        self.idling = False

    def alive(self):
        """
        One round trip through the gateway to the provider: NOOP on each
        protocol (IMAP leaves IDLE first and enters it again). Fails the
        test when the session is gone.
        """
        try:
            if self.proto == "imap":
                was_idling = self.idling
                if was_idling:
                    self.done()
                tag = self.tag()
                _, t = self.c.command(tag, "NOOP")
                assert t.startswith(tag.encode() + b" OK"), self.c.dump()
                if was_idling:
                    self.idle()
            elif self.proto == "pop3":
                s = self.c.command("NOOP")
                assert s.startswith(b"+OK"), self.c.dump()
            else:
                code, _ = self.c.command("NOOP")
                assert code == 250, self.c.dump()
        except (EOFError, OSError) as e:
            raise AssertionError("%s session of %s is gone: %s\n%s"
                                 % (self.proto, self.user, e, self.c.dump()))
        return True

    def fetch_subjects(self):
        """IMAP: the Subject headers of every message in the SELECTed INBOX."""
        assert self.proto == "imap" and not self.idling
        tag = self.tag()
        lines, t = self.c.command(tag, "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert t.startswith(tag.encode() + b" OK"), self.c.dump()
        return [l.decode("utf-8", "replace").strip() for l in lines if l.lower().startswith(b"subject:")]

    def wait_closed(self, deadline=CLOSE_DEADLINE):
        """
        Reads until the gateway closes the connection; returns the
        time.monotonic() of the close. Whatever the gateway sends first
        (a BYE, an IDLE update) is ignored. Fails after `deadline` seconds.
        """
        end = time.monotonic() + deadline
        sock = self.c.sock
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("%s session of %s still open after %.1f s\n%s"
                                     % (self.proto, self.user, deadline, self.c.dump()))
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, ConnectionError):
                return time.monotonic()
            if not data:
                return time.monotonic()
            self.c.transcript.append(b"S: " + data)

    def close(self):
        self.c.close()


@contextlib.contextmanager
def live_sessions():
    """A list to append Live sessions to; all are closed on exit."""
    sessions = []
    try:
        yield sessions
    finally:
        for s in sessions:
            s.close()


def revoke_delay(run_cli, session, what):
    """
    Runs run_cli() (a CLI change that must end `session`), then waits for
    the gateway to close the session; returns the delay from the CLI's
    return to the close, which must be under REVOKE_BOUND. Prints it.
    """
    run_cli()
    t0 = time.monotonic()
    t1 = session.wait_closed()
    delay = max(0.0, t1 - t0)
    print("%s: %s session of %s closed %.2f s after the CLI returned"
          % (what, session.proto, session.user, delay))
    assert delay < REVOKE_BOUND, "%s: the session closed after %.2f s" % (what, delay)
    return delay


# --------------------------------------------------------------------------
# The gateway's log


def log_offset(gw):
    try:
        return os.path.getsize(gw.log_path)
    except FileNotFoundError:
        return 0


def log_since(gw, offset):
    with open(gw.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def wait_log(gw, pattern, offset=0, deadline=5.0, count=1):
    """Waits until `count` lines after offset match the regex; returns the matches."""
    rx = re.compile(pattern, re.M)

    def found():
        ms = list(rx.finditer(log_since(gw, offset)))
        return ms if len(ms) >= count else None

    return wait_for(found, deadline, "%d gateway log line(s) /%s/" % (count, pattern),
                    log=lambda: log_since(gw, offset))


_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def fields(line):
    """The key=value fields of a log line, quotes removed."""
    d = {}
    for k, v in _KV.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1]
        d[k] = v
    return d


def login_lines(gw, offset, user, count, deadline=10.0, proto=r"\w+"):
    """
    Waits for `count` login lines of `user` (logged in as USER or as
    USER+PROVIDER) after offset; returns them as field dicts (with "proto"
    added), in log order.
    """
    pat = r'^.* (%s) login user="%s(?:\+[^"]*)?" .*$' % (proto, re.escape(user))
    ms = wait_log(gw, pat, offset, deadline=deadline, count=count)
    rows = []
    for m in ms:
        f = fields(m.group(0))
        f["proto"] = m.group(1)
        rows.append(f)
    return rows


# --------------------------------------------------------------------------
# Gateways with their own configuration


STORE_LINE = re.compile(r"^store:\s*\{(.*)\}\s*$", re.M)


# These tests fail logins on purpose, many for one user and all from
# 127.0.0.1: with the gateway's default brute-force settings (a delay from
# the 3rd failure, doubling up to 8 s; the address blocked after 20) they
# would wait for those delays, close to the clients' 10 s read timeout, or
# be blocked. Brute-force protection is tested on its own; here it is off
# unless a configuration says otherwise.
NO_BRUTE_FORCE = "brute_force: { delay_after: 1000, max_delay: 0, block_after: 100000 }"


class CredGateway(harness.Gateway):
    """
    harness.Gateway (all its options pass through), with brute-force
    delays and blocking off (NO_BRUTE_FORCE) unless the configuration
    harness.Gateway writes has a brute_force section already, and changes
    to the `store:` mapping, made by editing that file:

      store      {key: value} merged into the `store:` mapping (e.g.
                 {"master_key": PATH} to share another gateway's keys, or
                 {"poll_interval": 1})
      drop_store keys removed from the `store:` mapping
    """

    def __init__(self, *args, store=None, drop_store=(), **kw):
        super().__init__(*args, **kw)
        self.store_changes = dict(store or {})
        self.store_drop = tuple(drop_store)

    def write_config(self):
        super().write_config()
        text = read_text(self.conf)
        if not re.search(r"(?m)^brute_force\s*:", text):
            text = text.rstrip("\n") + "\n" + NO_BRUTE_FORCE + "\n"
            with open(self.conf, "w") as f:
                f.write(text)
        if not (self.store_changes or self.store_drop):
            return
        mo = STORE_LINE.search(text)
        if not mo:
            raise HarnessError("creds.CredGateway: no one-line `store: {...}` in %s:\n%s"
                               % (self.conf, text))
        items = []
        for part in split_flow(mo.group(1)):
            k, _, v = part.partition(":")
            items.append([k.strip(), v.strip()])
        items = [kv for kv in items if kv[0] not in self.store_drop]
        for k, v in self.store_changes.items():
            for kv in items:
                if kv[0] == k:
                    kv[1] = yaml_scalar(v)
                    break
            else:
                items.append([k, yaml_scalar(v)])
        store = "store: { %s }" % ", ".join("%s: %s" % (k, v) for k, v in items)
        with open(self.conf, "w") as f:
            f.write(text[:mo.start()] + store + text[mo.end():])


def split_flow(s):
    """Splits the inside of a YAML flow mapping at top-level commas."""
    parts, cur, q = [], "", None
    for ch in s:
        if q:
            cur += ch
            if ch == q:
                q = None
        elif ch in "\"'":
            q = ch
            cur += ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def yaml_scalar(v):
    if isinstance(v, (int, float)):
        return str(v)
    v = str(v)
    if re.match(r"\A[A-Za-z0-9_./@-]+\Z", v):
        return v
    return json.dumps(v)


def check_clean_exit(gw):
    """What conftest checks of its gateway after a stop, for ours."""
    log = gw.log_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "loop still had open handles"):
        assert marker not in log, "gateway log has %r:\n%s" % (marker, tail(log))
    assert gw.proc.returncode == 0, "gateway exited with %s:\n%s" % (gw.proc.returncode, tail(log))


def module_gateway(workdir, ca, dovecot, postfix, request):
    """
    The body of a module-scoped `gateway` fixture that overrides
    conftest's for a module (conftest's make_user then uses it too): the
    same running gateway with alice at testprov, as a CredGateway.
    """
    name = "cg-" + request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")
    gw = CredGateway(os.path.join(workdir, name), ca, dovecot, postfix)
    with running(gw):
        gw.add_user(harness.ALICE, harness.ALICE_GW_PASSWORD)
        gw.set_account(harness.ALICE, "testprov", harness.ALICE_LOGIN, harness.ALICE_APP_PASSWORD)
        yield gw


@contextlib.contextmanager
def running(gw):
    """Starts gw, yields it, stops it and checks it exited cleanly."""
    try:
        gw.start()
    except HarnessError as e:
        gw.stop()
        raise AssertionError("gateway %s did not start: %s" % (gw.dir, e))
    try:
        yield gw
    finally:
        gw.stop()
    check_clean_exit(gw)


# --------------------------------------------------------------------------
# Secrets at rest


def store_bytes(gw):
    """The bytes of a SQLite store, with its WAL and journal."""
    db = os.path.join(gw.dir, "store.db")
    data = b""
    for path in (db, db + "-wal", db + "-journal", db + "-shm"):
        try:
            with open(path, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    assert data, "no store file at %s" % db
    return data


# --------------------------------------------------------------------------
# PostgreSQL (conftest's `postgres` fixture: harness.Postgres)


def pg_stop(pg):
    pg.stop()


def pg_start(pg):
    pg.start()


def postgres_gateway(dir, ca, dovecot, postfix, conninfo, keys_of=None):
    """
    A gateway whose store is the PostgreSQL database `conninfo`
    (harness.Gateway's postgres option). keys_of: another gateway whose
    master key (and so the device key beside it) this one shares, as
    gateways sharing a store must.
    """
    store = {}
    if keys_of is not None:
        store["master_key"] = os.path.join(keys_of.dir, "master.key")
    return CredGateway(dir, ca, dovecot, postfix, postgres=conninfo, store=store)
