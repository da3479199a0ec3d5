"""
End-to-end harness for mailgate: a test CA, a private Dovecot and a private
Postfix (together the "provider": IMAP, POP3 and SMTP submission, one set of
passwords, one set of mailboxes) and the gateway itself, each started as a
child process whose PID we record and stop by that PID only.

Nothing here sleeps to synchronise. Every wait is on something observable
(a port that accepts, a log line, a reply) and carries a deadline, so that a
broken gateway makes a test fail instead of hang.
"""

import base64
import errno
import glob
import imaplib
import json
import os
import poplib
import pwd
import random
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

# Deadline for one network read by a test client. A reply slower than this is
# a failure, never a hang.
IO_TIMEOUT = 10.0
START_DEADLINE = 10.0
STOP_DEADLINE = 5.0

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Dovecot only refuses plaintext when the client and server addresses differ
# (see /work/shared/TESTING-NOTES.md): the provider lives on 127.0.0.2 and
# every client, including the gateway, connects from 127.0.0.1.
PROVIDER_ADDR = "127.0.0.2"
# The names and address the test providers' certificates are valid for.
PROVIDER_SAN = "DNS:provider.test,DNS:localhost,IP:127.0.0.2"
GATEWAY_ADDR = "127.0.0.1"
# The harness's own direct connections to the provider (delivering and
# reading mail behind the gateway's back) come from a third address, so that
# Dovecot's log tells the gateway's connections (rip=127.0.0.1) from ours.
HARNESS_ADDR = "127.0.0.3"


# The standing user of every gateway fixture (see conftest.py): the device
# logs in as ALICE with ALICE_GW_PASSWORD; the gateway logs in upstream as
# ALICE_LOGIN with ALICE_APP_PASSWORD.
ALICE = "alice"
ALICE_GW_PASSWORD = "gw-alice-secret"
ALICE_LOGIN = "alice@example.test"
ALICE_APP_PASSWORD = "app-pass-1"
BOB_LOGIN = "bob@example.test"
BOB_APP_PASSWORD = "app-pass-bob"
# SMTPUTF8: mail to the UTF-8 address UTF8_ADDR lands, through a Postfix
# virtual alias, in the mailbox of the ASCII login UTF8_LOGIN.
UTF8_ADDR = "jörg@example.test"
UTF8_LOGIN = "joerg@example.test"
UTF8_APP_PASSWORD = "app-pass-joerg"


class HarnessError(Exception):
    pass


# --------------------------------------------------------------------------
# Small utilities


_ports_given = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(addr):
    """
    A TCP port on addr that was free a moment ago, and that this process
    has not handed out before: the kernel may offer a port it just gave us
    again (seen when the ephemeral range is nearly used up). When it is used
    up entirely (bind to port 0 fails: tens of thousands of TIME_WAIT
    connections, e.g. from a load test running on the same machine), a
    free port below the ephemeral range is taken instead: no outgoing
    connection ever uses one of those.
    """
    rnd = random.Random()
    for _ in range(200):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((addr, 0))
                port = s.getsockname()[1]
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            lo, _ = _ephemeral_range()
            port = rnd.randrange(10000, max(lo, 10001))
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((addr, port))
            except OSError:
                continue
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise HarnessError("no fresh free port on %s" % addr)


def wait_for(predicate, deadline, what, interval=0.02, proc=None, log=None):
    """
    Polls predicate() until it returns a true value, which is returned.
    Fails after `deadline` seconds. When proc is given, an early exit of that
    process fails at once, with the tail of `log` (a callable) in the message.
    """
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise HarnessError("%s: process %d exited with status %s while waiting\n%s"
                               % (what, proc.pid, proc.returncode, tail(log() if log else "")))
        if time.monotonic() >= end:
            raise HarnessError("timed out after %.1f s waiting for %s\n%s"
                               % (deadline, what, tail(log() if log else "")))
        if proc is not None:
            # Waiting on the process doubles as the pause between polls and
            # notices its exit immediately.
            try:
                proc.wait(timeout=interval)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(interval)


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def port_accepts(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def run(argv, input=None, timeout=30, check=True, env=None):
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise HarnessError("%s exited %d\nstdout: %s\nstderr: %s"
                           % (" ".join(argv), p.returncode,
                              p.stdout.decode("utf-8", "replace"),
                              p.stderr.decode("utf-8", "replace")))
    return p


def stop_process(proc, deadline=STOP_DEADLINE):
    """
    SIGTERM to exactly this child, wait with a deadline, then SIGKILL. The
    child was started in its own session, so its process group is ours too:
    after a SIGKILL we also stop what is left of that group (for Dovecot, the
    helpers its master forked).
    """
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=deadline)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass


def client_context(cafile):
    """A client TLS context that trusts only cafile and checks host names."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --------------------------------------------------------------------------
# Test CA, made with the openssl CLI


class TestCA:
    """
    Two unrelated CAs under dir: `ca.crt` signs the provider's and the
    gateway's certificates; `other-ca.crt` signs nothing we use, so a
    provider configured with it as ca_file must be refused.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, dir):
        self.dir = dir
        self.ca_cert = os.path.join(dir, "ca.crt")
        self.ca_key = os.path.join(dir, "ca.key")
        self.other_ca_cert = os.path.join(dir, "other-ca.crt")
        self.other_ca_key = os.path.join(dir, "other-ca.key")
        self.provider_cert = os.path.join(dir, "provider.crt")
        self.provider_key = os.path.join(dir, "provider.key")
        self.gateway_cert = os.path.join(dir, "mailgate.crt")
        self.gateway_key = os.path.join(dir, "mailgate.key")
        self._make_ca(self.ca_key, self.ca_cert, "mailgate test CA")
        self._make_ca(self.other_ca_key, self.other_ca_cert, "unrelated test CA")
        self._make_leaf("provider", self.provider_key, self.provider_cert,
                        "provider.test", PROVIDER_SAN)
        self._make_leaf("mailgate", self.gateway_key, self.gateway_cert,
                        "localhost", "DNS:localhost,IP:127.0.0.1")
        # Test keys, worthless outside this directory: readable by whatever
        # unprivileged user the gateway or Dovecot may switch to.
        for path in (self.provider_key, self.gateway_key):
            os.chmod(path, 0o644)

    def _make_ca(self, key, cert, cn):
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _make_leaf(self, name, key, cert, cn, san, other_ca=False):
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n" % san)
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn])
        ca_cert, ca_key = ((self.other_ca_cert, self.other_ca_key) if other_ca
                           else (self.ca_cert, self.ca_key))
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])

    def context(self):
        return client_context(self.ca_cert)


# --------------------------------------------------------------------------
# The provider: a private Dovecot


DOVECOT_CONF = """\
# Private Dovecot for mailgate's end-to-end tests. Generated; do not edit.
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log
instance_name = mg-e2e-{tag}
protocols = imap pop3 lmtp
listen = {addr}
# Delivery from the private Postfix (see Postfix below) over LMTP, and its
# SASL lookups, both on UNIX sockets in base_dir that only `postfix` may use.
postmaster_address = postmaster@example.test

ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
auth_cache_size = 0
# After a failed login, Dovecot 2.3 delays the next logins from the same
# address by 4 s, then more, up to 15 s (the auth penalty, kept by anvil),
# whatever auth_failure_delay says. Tests fail upstream logins from the gateway's address on purpose
# (stale app passwords): without this, the logins of the tests after them
# would wait 4, 8, 15 s. Mode 0 keeps the auth process from reaching anvil's
# penalty socket, which is how Dovecot 2.3 turns the penalty off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
first_valid_uid = {uid}
last_valid_uid = {uid}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {addr}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {addr}
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {addr}
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = {addr}
    port = {pop3s_port}
    ssl = yes
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service lmtp {{
  unix_listener lmtp-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


class Dovecot:
    """
    A private Dovecot on 127.0.0.2 run in the foreground (`dovecot -F`) as
    our child. Users live in passwd-files, one per user, with PLAIN
    passwords; mail is Maildir under dir/mail, owned by the system user
    `mail`.
    """

    MAIL_USER = "mail"

    def __init__(self, dir, ca):
        self.dir = dir
        self.ca = ca
        self.addr = PROVIDER_ADDR
        self.conf = os.path.join(dir, "dovecot.conf")
        self.passwd_dir = os.path.join(dir, "passwd.d")
        self.revision = 0
        self.revisions = {}
        self.log_path = os.path.join(dir, "dovecot.log")
        self.passwords = {}
        self.proc = None
        pw = pwd.getpwnam(self.MAIL_USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.imap_port = free_port(self.addr)
        self.imaps_port = free_port(self.addr)
        self.pop3_port = free_port(self.addr)
        self.pop3s_port = free_port(self.addr)
        # For the private Postfix: SASL lookups and LMTP delivery.
        self.auth_socket = os.path.join(dir, "run", "auth-postfix")
        self.lmtp_socket = os.path.join(dir, "run", "lmtp-postfix")
        # Users' homes: mail/USER, with the Maildir in mail/USER/Maildir.
        self.mail_base = os.path.join(dir, "mail")

    # -- lifecycle --

    def start(self):
        for sub in ("run", "state"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o755, exist_ok=True)
        maildir = self.mail_base
        os.makedirs(maildir, mode=0o755, exist_ok=True)
        os.chown(maildir, self.uid, self.gid)
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(
                dir=self.dir, tag=os.path.basename(self.dir), addr=self.addr,
                cert=self.ca.provider_cert, key=self.ca.provider_key,
                uid=self.uid, gid=self.gid,
                imap_port=self.imap_port, imaps_port=self.imaps_port,
                pop3_port=self.pop3_port, pop3s_port=self.pop3s_port))
        os.makedirs(self.passwd_dir, mode=0o755, exist_ok=True)
        for user in self.passwords:
            self._write_user(user)
        self.console = open(os.path.join(self.dir, "dovecot.console"), "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.console,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        for port in (self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port):
            wait_for(lambda: port_accepts(self.addr, port), START_DEADLINE,
                     "Dovecot on %s:%d" % (self.addr, port), proc=self.proc,
                     log=self._startup_log)
        for path in (self.auth_socket, self.lmtp_socket):
            wait_for(lambda: os.path.exists(path), START_DEADLINE, "Dovecot socket " + path,
                     proc=self.proc, log=self._startup_log)
        return self

    def _startup_log(self):
        return read_text(os.path.join(self.dir, "dovecot.console")) + self.log_text()

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "console", None):
            self.console.close()

    # -- users --

    def _write_user(self, user):
        """
        Writes the user's own passwd-file (one file per user: a new user is
        seen at once, and a rotation touches nobody else's file). The file
        is replaced atomically, with an mtime strictly later (by 2 s at
        least) than the old file's: Dovecot re-reads a passwd-file only when
        its mtime changes. Each write carries a fresh revision number in a
        passdb extra field, mg_rev, which wait_revision() looks for.
        """
        self.revision += 1
        self.revisions[user] = self.revision
        path = os.path.join(self.passwd_dir, user)
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write("%s:{PLAIN}%s::::::mg_rev=%d\n" % (user, self.passwords[user], self.revision))
        os.chmod(tmp, 0o644)
        if os.path.exists(path):
            new = max(os.stat(path).st_mtime + 2, time.time())
            os.utime(tmp, (new, new))
        os.replace(tmp, path)

    def add_user(self, user, password):
        assert "/" not in user and user not in self.passwords, user
        self.passwords[user] = password
        self._write_user(user)
        if self.proc is not None:
            self.wait_revision(user)

    def set_password(self, user, password):
        """Rotates a user's password at the provider (the app password)."""
        assert user in self.passwords, user
        self.passwords[user] = password
        self._write_user(user)
        self.wait_revision(user)

    def auth_lookup(self, user):
        """The passdb fields Dovecot's auth process returns for user now."""
        p = run(["doveadm", "-c", self.conf, "auth", "lookup", user], timeout=10, check=False)
        return p.stdout.decode("utf-8", "replace")

    def wait_revision(self, user):
        """
        Dovecot stats a passwd-file at most once per second: a change made
        in the second of the user's last lookup is seen only in the next
        one. Waits until a lookup (which never counts as a failed login)
        returns the revision we wrote last.
        """
        rx = re.compile(r"^\s*mg_rev\s*:\s*%d\s*$" % self.revisions[user], re.M)
        wait_for(lambda: rx.search(self.auth_lookup(user)), START_DEADLINE,
                 "Dovecot to read the new passwd-file of %s" % user, interval=0.05,
                 log=self.log_text)

    # -- clients --

    def connect(self, starttls=False, source=HARNESS_ADDR):
        """A direct imaplib client to the provider, over TLS, not logged in."""
        ctx = self.ca.context()
        if starttls:
            m = SourceIMAP4(self.addr, self.imap_port, timeout=IO_TIMEOUT, source=source)
            m.starttls(ssl_context=ctx)
            return m
        return SourceIMAP4_SSL(self.addr, self.imaps_port, ssl_context=ctx,
                               timeout=IO_TIMEOUT, source=source)

    def login(self, user):
        m = self.connect()
        m.login(user, self.passwords[user])
        return m

    def pop3(self, user):
        """A direct poplib client to the provider (POP3S), logged in."""
        p = SourcePOP3_SSL(self.addr, self.pop3s_port, self.ca.context(), timeout=IO_TIMEOUT)
        p.user(user)
        p.pass_(self.passwords[user])
        return p

    def append(self, user, mailbox, message, flags=None):
        """
        Delivers a message "upstream": APPEND over a direct IMAPS connection
        to Dovecot. Creates the mailbox if needed. Returns the new UID.
        """
        m = self.login(user)
        try:
            if mailbox.upper() != "INBOX":
                typ, _ = m.create(mailbox)  # NO when it exists already: fine
            typ, data = m.append(mailbox, flags, None, message)
            assert typ == "OK", (typ, data)
            mo = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
            assert mo, data
            return int(mo.group(1))
        finally:
            logout(m)

    def fetch(self, user, mailbox, uid):
        """BODY.PEEK[] of one message, read directly from Dovecot."""
        m = self.login(user)
        try:
            typ, _ = m.select(mailbox, readonly=True)
            assert typ == "OK"
            return uid_fetch_body(m, uid)
        finally:
            logout(m)

    def wait_message(self, user, message_id, mailbox="INBOX", deadline=10.0):
        """
        Waits until a message with this Message-ID is in user's mailbox
        (mail delivered by Postfix), polling the mailbox over one IMAP
        session. Returns (uid, the message as Dovecot serves it).
        """
        m = self.login(user)
        try:
            typ, _ = m.select(mailbox, readonly=True)
            assert typ == "OK"

            def search():
                m.noop()
                typ, data = m.uid("SEARCH", "HEADER", "Message-ID", message_id)
                assert typ == "OK", (typ, data)
                uids = data[0].split()
                return uids and int(uids[-1])

            uid = wait_for(search, deadline, "message %s in %s's %s" % (message_id, user, mailbox),
                           interval=0.05)
            return uid, uid_fetch_body(m, uid)
        finally:
            logout(m)

    # -- logs --

    def log_text(self):
        return read_text(self.log_path)

    def log_offset(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_barrier(self):
        """
        Logs in a marker user directly and waits for its Login line: what
        the provider logged about earlier connections is in the file by then.
        """
        marker = "barrier@example.test"
        if marker not in self.passwords:
            self.add_user(marker, "barrier-pass")
        off = self.log_offset()
        logout(self.login(marker))
        self.wait_log(r"Login: user=<%s>" % re.escape(marker), off)

    def wait_log(self, pattern, offset=0, deadline=5.0):
        """Waits for a log line matching the regex pattern after offset."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_since(offset)), deadline,
                        "Dovecot log line /%s/" % pattern, log=lambda: self.log_since(offset))


class SourcePOP3_SSL(poplib.POP3_SSL):
    """poplib.POP3_SSL connecting from a chosen local address."""

    def __init__(self, host, port, context, timeout=None, source=HARNESS_ADDR):
        self.source = source
        super().__init__(host, port, context=context, timeout=timeout)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


class SourceIMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 connecting from a chosen local address."""

    def __init__(self, host, port, timeout=None, source=HARNESS_ADDR):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


class SourceIMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib.IMAP4_SSL connecting from a chosen local address."""

    def __init__(self, host, port, ssl_context, timeout=None, source=HARNESS_ADDR):
        self.source = source
        super().__init__(host, port, ssl_context=ssl_context, timeout=timeout)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def logout(m):
    try:
        m.logout()
    except Exception:
        try:
            m.shutdown()
        except Exception:
            pass


def uid_fetch_body(m, uid):
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK", (typ, data)
    for item in data:
        if isinstance(item, tuple):
            return item[1]
    raise AssertionError("no literal in FETCH reply: %r" % (data[:3],))


# --------------------------------------------------------------------------
# The provider's submission server: a private Postfix


POSTFIX_MAIN_CF = """\
# Private Postfix for mailgate's end-to-end tests. Generated; do not edit.
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop

myhostname = provider.test
mydomain = example.test
myorigin = example.test
# Nothing is delivered locally, nothing is relayed, and nothing is looked up
# in the DNS: the only destination is example.test, by LMTP into the test
# Dovecot. A recipient anywhere else is refused at RCPT TO (the error
# transport), never queued.
mydestination =
relayhost =
relay_domains =
# Every service binds {addr} explicitly (master.cf). inet_interfaces must
# name addresses of real interfaces, which 127.0.0.2 is not.
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = {addr}/32
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
default_transport = error:5.7.1 the test provider relays nothing
relay_transport = error:5.7.1 the test provider relays nothing
local_transport = error:5.1.1 no local delivery at the test provider
alias_maps =
alias_database =
# The gateway connects from 127.0.0.1, an address of this host: still a
# remote client, whose headers Postfix must not rewrite or complete.
local_header_rewrite_clients =
notify_classes =
biff = no

# Every address at example.test exists here; Dovecot's LMTP refuses the ones
# it has no passwd-file for.
virtual_mailbox_domains = example.test
virtual_mailbox_maps = regexp:{dir}/vmailbox.regexp
virtual_alias_maps = texthash:{dir}/virtual
virtual_transport = lmtp:unix:{lmtp_socket}
# Dovecot 2.3's LMTP does not offer SMTPUTF8, and Postfix bounces a message
# that needs it rather than downgrade it. The mailboxes listed in
# transport_maps (the targets of the UTF-8 aliases) are delivered by
# Postfix's virtual(8) straight into the same Maildir Dovecot serves
# (home = mail/USER, mail_location = maildir:~/Maildir), as Dovecot's user.
transport_maps = texthash:{dir}/transport
virtual_mailbox_base = {mail_base}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}

smtputf8_enable = yes
# Room for a 20 MB attachment, base64-encoded.
message_size_limit = {size_limit}
mailbox_size_limit = 0
virtual_mailbox_limit = 0
smtpd_banner = $myhostname ESMTP test provider

smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_sasl_auth_enable = no
# The login owns exactly the address it is: a MAIL FROM other than the
# login is refused, as real providers do.
smtpd_sender_login_maps = regexp:{dir}/sender_login.regexp
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
"""

# Both submission services: AUTH only there, and a sender mismatch answered
# at MAIL FROM (smtpd_delay_reject=no) rather than at the first RCPT TO.
POSTFIX_SUBMISSION_OPTS = """\
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_delay_reject=no
  -o smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
"""

POSTFIX_MASTER_CF = """\
# Private Postfix for mailgate's end-to-end tests. Generated; do not edit.
# service type private unpriv chroot wakeup maxproc command
{addr}:{smtps_port} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
{opts}{addr}:{submission_port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
{opts}cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
virtual unix - n n - - virtual
  -o virtual_mailbox_maps=texthash:{dir}/vmaildirs
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

POSTFIX_DAEMON_DIR = "/usr/lib/postfix/sbin"


class Postfix:
    """
    A private Postfix on 127.0.0.2: submission with implicit TLS
    ("465", smtps_port) and with STARTTLS required before AUTH ("587",
    submission_port), SASL through the test Dovecot's auth socket (the same
    passwd-files, so the SMTP app password is the IMAP one), delivery to
    example.test by LMTP into the Maildirs Dovecot serves (by virtual(8)
    for the targets of utf8_aliases). Its log is dir/maillog.

    Its master runs in the foreground as our child, in its own session, with
    MAIL_CONFIG=dir; stop() ends it and waits until no process of its
    process group is left.
    """

    SIZE_LIMIT = 60 * 1024 * 1024

    def __init__(self, dir, ca, dovecot, utf8_aliases=None):
        """
        utf8_aliases: {address: mailbox}, virtual aliases (the address may
        be UTF-8) fixed for the life of the instance; each mailbox is
        delivered by virtual(8) so that SMTPUTF8 mail reaches it.
        """
        self.dir = dir
        self.ca = ca
        self.dovecot = dovecot
        self.addr = PROVIDER_ADDR
        self.log_path = os.path.join(dir, "maillog")
        self.smtps_port = free_port(self.addr)
        self.submission_port = free_port(self.addr)
        self.utf8_aliases = dict(utf8_aliases or {})
        self.proc = None
        self.env = dict(os.environ, MAIL_CONFIG=dir)

    def _write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        tmp = path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        # Postfix waits (in steps of 300 ms) until main.cf is at least a
        # second old, in case an editor is still writing it: date it back.
        then = time.time() - 10
        os.utime(tmp, (then, then))
        os.replace(tmp, path)

    def start(self):
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        self._write("main.cf", POSTFIX_MAIN_CF.format(
            dir=self.dir, addr=self.addr, cert=self.ca.provider_cert, key=self.ca.provider_key,
            auth_socket=self.dovecot.auth_socket, lmtp_socket=self.dovecot.lmtp_socket,
            mail_base=self.dovecot.mail_base, uid=self.dovecot.uid, gid=self.dovecot.gid,
            size_limit=self.SIZE_LIMIT))
        self._write("master.cf", POSTFIX_MASTER_CF.format(
            addr=self.addr, smtps_port=self.smtps_port, submission_port=self.submission_port,
            opts=POSTFIX_SUBMISSION_OPTS, dir=self.dir))
        self._write("vmailbox.regexp", "/^[^@]+@example\\.test$/ OK\n")
        # virtual(8) takes each Maildir from its own map (it allows no regexp
        # substitution): mail_base/USER/Maildir/, the Dovecot user's.
        self._write("vmaildirs", "".join("%s %s/Maildir/\n" % (m, m)
                                         for m in sorted(set(self.utf8_aliases.values()))))
        self._write("sender_login.regexp", "/^(.+)$/ ${1}\n")
        self._write("virtual", "".join("%s %s\n" % (a, m)
                                       for a, m in sorted(self.utf8_aliases.items())))
        self._write("transport", "".join("%s virtual:\n" % m
                                         for m in sorted(set(self.utf8_aliases.values()))))
        # `postfix check` creates what is missing under the queue directory
        # (and the data directory) with the right owners. It reports its
        # errors to syslog only; `postconf -n` below shows a broken main.cf.
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o755, exist_ok=True)
        run(["postconf", "-c", self.dir, "-n"], env=self.env)
        run(["postfix", "-c", self.dir, "check"], env=self.env)
        # The master in the foreground (no -w, which forks), as our child.
        self.console = open(os.path.join(self.dir, "master.console"), "wb")
        self.proc = subprocess.Popen([os.path.join(POSTFIX_DAEMON_DIR, "master"), "-c", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=self.console,
                                     stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        for port in (self.smtps_port, self.submission_port):
            wait_for(lambda: port_accepts(self.addr, port), START_DEADLINE,
                     "Postfix on %s:%d" % (self.addr, port), proc=self.proc,
                     log=self._startup_log)
        return self

    def _startup_log(self):
        return read_text(os.path.join(self.dir, "master.console")) + self.log_text()

    def stop(self):
        if self.proc is not None:
            pgid = self.proc.pid
            stop_process(self.proc)
            # The master passes SIGTERM on to its children and exits at once;
            # they end at their convenience. Wait for the whole process group
            # (the master's own session), then kill what is left of it.
            try:
                wait_for(lambda: not process_group_members(pgid), STOP_DEADLINE,
                         "Postfix processes of group %d to exit" % pgid)
            except HarnessError:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
        if getattr(self, "console", None):
            self.console.close()

    # -- clients --

    def smtp(self, starttls=False, source=HARNESS_ADDR, host=None):
        """A direct smtplib client to the provider, over TLS, EHLO done."""
        ctx = self.ca.context()
        if starttls:
            s = smtplib.SMTP(host or self.addr, self.submission_port, timeout=IO_TIMEOUT,
                             source_address=(source, 0))
            s.starttls(context=ctx)
        else:
            s = smtplib.SMTP_SSL(host or self.addr, self.smtps_port, timeout=IO_TIMEOUT,
                                 source_address=(source, 0), context=ctx)
        s.ehlo("harness.test")
        return s

    # -- logs --

    def log_text(self):
        return read_text(self.log_path)

    def log_offset(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, offset=0, deadline=5.0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_since(offset)), deadline,
                        "Postfix log line /%s/" % pattern, log=lambda: self.log_since(offset))


def process_group_members(pgid):
    """PIDs of the live processes in process group pgid (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids


# --------------------------------------------------------------------------
# PostgreSQL


PG_SH = os.path.join(REPO, "tests", "pg.sh")


def postgres_available():
    return bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))


class Postgres:
    """
    A private PostgreSQL server, run by tests/pg.sh: data in dir/data, a
    UNIX socket in dir, TCP on 127.0.0.1:port, the role "mailgate" and trust
    authentication. pg.sh records nothing but the server's own PID file, and
    stops exactly that PID.

    Gateways reach it over TCP (conninfo() uses host=127.0.0.1), as they
    would a real database server, so stop() makes their connections fail
    the way an outage does, and start() brings the same data back on the
    same port.
    """

    def __init__(self, dir, port=None):
        self.dir = dir
        self.port = port or free_port("127.0.0.1")
        self.running = False
        # The database of `conninfo`, made by the first start().
        self.dbname = "mailgate"

    def _pg_sh(self, *args, timeout=90):
        return run(["sh", PG_SH] + list(args), timeout=timeout)

    def start(self):
        """Starts the server (again), waiting until it accepts connections."""
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        self._pg_sh("start", self.dir, str(self.port), self.dbname)
        self.running = True
        return self

    def stop(self):
        """Stops the server (a fast shutdown: sessions are ended); the data stays."""
        self._pg_sh("stop", self.dir)
        self.running = False

    def conninfo_for(self, name):
        """The libpq connection string of database `name`."""
        return "host=127.0.0.1 port=%d dbname=%s user=mailgate" % (self.port, name)

    @property
    def conninfo(self):
        """The connection string of the default database, "mailgate"."""
        return self.conninfo_for(self.dbname)

    def create_database(self, name):
        """Creates database `name` (letters, digits, _) unless it exists; returns its conninfo."""
        if not re.match(r"\A[A-Za-z0-9_]+\Z", name):
            raise HarnessError("Postgres.create_database: bad name %r" % name)
        self._pg_sh("createdb", self.dir, str(self.port), name)
        return self.conninfo_for(name)

    def psql(self, name, sql):
        """Runs SQL in database `name` as the mailgate role; returns its output, unaligned."""
        bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        return run([os.path.join(bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                    "-d", self.conninfo_for(name), "-c", sql]).stdout.decode()

    def log_text(self):
        return read_text(os.path.join(self.dir, "postgres.log"))


# --------------------------------------------------------------------------
# The gateway


def mailgate_bin():
    return os.environ.get("MAILGATE_BIN") or os.path.join(REPO, "build", "mailgate")


GATEWAY_CONF = """\
# mailgate configuration for an end-to-end test. Generated; do not edit.
listen:
  - {{ protocol: imap, address: "{gw}:{imaps}", tls: implicit }}
  - {{ protocol: imap, address: "{gw}:{imap}", tls: starttls }}
  - {{ protocol: pop3, address: "{gw}:{pop3s}", tls: implicit }}
  - {{ protocol: pop3, address: "{gw}:{pop3}", tls: starttls }}
  - {{ protocol: smtp, address: "{gw}:{smtps}", tls: implicit }}
  - {{ protocol: smtp, address: "{gw}:{smtp}", tls: starttls }}
tls: {{ certificate: {cert}, key: {key} }}
store: {{ {store}, master_key: {dir}/master.key }}
timeouts: {{ {timeouts} }}
{brute_force}
{extra}
providers:
  testprov:
    imap: {{ host: {prov}, port: {d_imaps}, tls: implicit }}
    pop3: {{ host: {prov}, port: {d_pop3s}, tls: implicit }}
    smtp: {{ host: {prov}, port: {p_smtps}, tls: implicit }}
    ca_file: {ca}
  testprov-starttls:
    imap: {{ host: {prov}, port: {d_imap}, tls: starttls }}
    pop3: {{ host: {prov}, port: {d_pop3}, tls: starttls }}
    smtp: {{ host: {prov}, port: {p_submission}, tls: starttls }}
    ca_file: {ca}
  untrusted:
    imap: {{ host: {prov}, port: {d_imaps}, tls: implicit }}
    pop3: {{ host: {prov}, port: {d_pop3s}, tls: implicit }}
    smtp: {{ host: {prov}, port: {p_smtps}, tls: implicit }}
    ca_file: {other_ca}
  down:
    imap: {{ host: {prov}, port: {down_port}, tls: implicit }}
    pop3: {{ host: {prov}, port: {down_port}, tls: implicit }}
    smtp: {{ host: {prov}, port: {down_port}, tls: implicit }}
    ca_file: {ca}
{providers_extra}
"""


class Gateway:
    """
    One mailgate process with its own config, store and master key under
    dir. `cli()` runs the admin commands against the same config; a running
    gateway sees their changes at the next login.

    The store is the SQLite file dir/store.db, or with postgres=CONNINFO
    (for example Postgres.create_database()) that PostgreSQL database
    (store.postgres in the config).
    """

    def __init__(self, dir, ca, dovecot, postfix, postgres=None, timeouts=None, extra="",
                 providers_extra=""):
        """
        timeouts: a dict merged over {login: 60, idle: 1800, connect: 10, shutdown_grace: 0s}
        (values as YAML scalars, e.g. "2s"); extra: YAML text added at the
        top level (e.g. "limits: { connections_per_ip: 3 }"); providers_extra:
        YAML text added under providers:, indented by two spaces.
        """
        # shutdown_grace 0s: stopping a test gateway ends its sessions at once
        # (the graceful stop has tests of its own).
        self.timeouts = {"login": 60, "idle": 1800, "connect": 10, "shutdown_grace": "0s"}
        self.timeouts.update(timeouts or {})
        self.extra = extra
        self.providers_extra = providers_extra
        # Many tests fail logins on purpose from 127.0.0.1: the brute-force
        # defence is set out of their way unless a test asks for it (extra
        # with its own brute_force: replaces this).
        self.brute_force = "" if "brute_force:" in extra else \
            "brute_force: { delay_after: 1000, block_after: 100000 }"
        self.dir = dir
        self.postgres = postgres
        self.ca = ca
        self.dovecot = dovecot
        self.postfix = postfix
        self.bin = mailgate_bin()
        self.addr = GATEWAY_ADDR
        self.conf = os.path.join(dir, "mailgate.yaml")
        self.log_path = os.path.join(dir, "mailgate.log")
        self.proc = None
        self.imaps_port = free_port(self.addr)
        self.imap_port = free_port(self.addr)
        self.pop3s_port = free_port(self.addr)   # "995"
        self.pop3_port = free_port(self.addr)    # "110", with STLS
        self.smtps_port = free_port(self.addr)   # "465"
        self.smtp_port = free_port(self.addr)    # "587", with STARTTLS
        # Nothing listens here: bound and closed a moment ago on the
        # provider's address.
        self.down_port = free_port(PROVIDER_ADDR)

    def write_config(self):
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        if self.postgres is not None:
            # A JSON string is a YAML double-quoted scalar.
            store = "postgres: %s" % json.dumps(self.postgres)
        else:
            store = "sqlite: %s/store.db" % self.dir
        with open(self.conf, "w") as f:
            f.write(GATEWAY_CONF.format(
                store=store,
                gw=self.addr, imaps=self.imaps_port, imap=self.imap_port,
                pop3s=self.pop3s_port, pop3=self.pop3_port,
                smtps=self.smtps_port, smtp=self.smtp_port,
                p_smtps=self.postfix.smtps_port, p_submission=self.postfix.submission_port,
                cert=self.ca.gateway_cert, key=self.ca.gateway_key, dir=self.dir,
                timeouts=", ".join("%s: %s" % kv for kv in self.timeouts.items()),
                extra=self.extra, brute_force=self.brute_force,
                providers_extra=self.providers_extra, prov=PROVIDER_ADDR,
                d_imaps=self.dovecot.imaps_port, d_imap=self.dovecot.imap_port,
                d_pop3s=self.dovecot.pop3s_port, d_pop3=self.dovecot.pop3_port,
                ca=self.ca.ca_cert, other_ca=self.ca.other_ca_cert,
                down_port=self.down_port))

    def start(self, before_run=None):
        """
        Writes the config, runs `mailgate init`, then before_run(self) if
        given (e.g. adding users or changing file owners while nothing
        runs), then starts the gateway and waits for every listener.
        """
        if not (os.path.isfile(self.bin) and os.access(self.bin, os.X_OK)):
            raise HarnessError("mailgate binary not found or not executable: %s "
                               "(build it, or set MAILGATE_BIN)" % self.bin)
        self.write_config()
        self.cli("init")
        if before_run is not None:
            before_run(self)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bin, "run", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.ports():
            wait_for(lambda: port_accepts(self.addr, port), START_DEADLINE,
                     "mailgate listening on %s:%d" % (self.addr, port),
                     proc=self.proc, log=self.log_text)
        return self

    def ports(self):
        return (self.imaps_port, self.imap_port, self.pop3s_port, self.pop3_port,
                self.smtps_port, self.smtp_port)

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def log_text(self):
        return read_text(self.log_path)

    def log_offset(self):
        return len(self.log_text())

    def log_since(self, offset):
        return self.log_text()[offset:]

    def wait_log(self, pattern, offset=0, deadline=5.0):
        """Waits for a line of the gateway's log matching the regex pattern after offset."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_since(offset)), deadline,
                        "gateway log line /%s/" % pattern, log=lambda: self.log_since(offset))

    # -- admin CLI --

    def cli(self, *args, input=None, check=True):
        """Runs `mailgate ARGS -c CFG`; input is a str fed to stdin."""
        data = input.encode() if isinstance(input, str) else input
        return run([self.bin] + list(args) + ["-c", self.conf], input=data, timeout=30,
                   check=check)

    def add_user(self, user, password):
        self.cli("user", "add", user, "--password-stdin", input=password + "\n")

    def set_account(self, user, provider, login, app_password):
        self.cli("account", "set", user, provider, "--login", login, "--password-stdin",
                 input=app_password + "\n")

    # -- clients --

    def imap_ssl(self, host=None):
        """imaplib over implicit TLS; host is the name checked in the cert."""
        return imaplib.IMAP4_SSL(host or self.addr, self.imaps_port,
                                 ssl_context=self.ca.context(), timeout=IO_TIMEOUT)

    def imap_plain(self):
        """imaplib on the STARTTLS listener, before STARTTLS."""
        return imaplib.IMAP4(self.addr, self.imap_port, timeout=IO_TIMEOUT)

    def imap_starttls(self):
        m = self.imap_plain()
        m.starttls(ssl_context=self.ca.context())
        return m

    def raw(self, tls="implicit", source=None):
        """A line-level client (RawIMAP), greeting already read; source: a local address."""
        if tls == "implicit":
            return RawIMAP.connect(self.addr, self.imaps_port, self.ca.context(), implicit=True,
                                   source=source)
        c = RawIMAP.connect(self.addr, self.imap_port, self.ca.context(), implicit=False,
                            source=source)
        if tls == "starttls":
            c.starttls()
        return c

    def pop3_ssl(self, host=None):
        """poplib over implicit TLS, greeting read."""
        return poplib.POP3_SSL(host or self.addr, self.pop3s_port, context=self.ca.context(),
                               timeout=IO_TIMEOUT)

    def pop3_plain(self):
        """poplib on the STLS listener, before STLS."""
        return poplib.POP3(self.addr, self.pop3_port, timeout=IO_TIMEOUT)

    def pop3_stls(self):
        p = self.pop3_plain()
        p.stls(context=self.ca.context())
        return p

    def raw_pop3(self, tls="implicit", source=None):
        """A line-level POP3 client (RawPOP3), greeting already read."""
        if tls == "implicit":
            return RawPOP3.connect(self.addr, self.pop3s_port, self.ca.context(), implicit=True,
                                   source=source)
        c = RawPOP3.connect(self.addr, self.pop3_port, self.ca.context(), implicit=False,
                            source=source)
        if tls == "starttls":
            c.stls()
        return c

    def smtp_ssl(self, host=None):
        """smtplib over implicit TLS ("465"), greeting read, no EHLO yet."""
        return smtplib.SMTP_SSL(host or self.addr, self.smtps_port, context=self.ca.context(),
                                timeout=IO_TIMEOUT)

    def smtp_plain(self):
        """smtplib on the STARTTLS listener ("587"), before STARTTLS."""
        return smtplib.SMTP(self.addr, self.smtp_port, timeout=IO_TIMEOUT)

    def smtp_starttls(self):
        s = self.smtp_plain()
        s.ehlo("device.test")
        s.starttls(context=self.ca.context())
        return s

    def raw_smtp(self, tls="implicit", source=None):
        """A line-level SMTP client (RawSMTP), greeting already read."""
        if tls == "implicit":
            return RawSMTP.connect(self.addr, self.smtps_port, self.ca.context(), implicit=True,
                                   source=source)
        c = RawSMTP.connect(self.addr, self.smtp_port, self.ca.context(), implicit=False,
                            source=source)
        if tls == "starttls":
            c.ehlo()
            c.starttls()
        return c


# --------------------------------------------------------------------------
# A line-level IMAP client, for exact replies and protocol edge cases


class RawIMAP:
    def __init__(self, sock, ctx, host):
        self.sock = sock
        self.ctx = ctx
        self.host = host
        self.buf = b""
        self.greeting = None
        self.transcript = []

    @classmethod
    def connect(cls, addr, port, ctx, implicit=True, source=None):
        sock = socket.create_connection((addr, port), timeout=IO_TIMEOUT,
                                        source_address=(source, 0) if source else None)
        if implicit:
            sock = ctx.wrap_socket(sock, server_hostname=addr)
        c = cls(sock, ctx, addr)
        c.greeting = c.readline()
        return c

    def send(self, data):
        self.transcript.append(b"C: " + data)
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server; transcript:\n%s" % self.dump())
        self.buf += chunk

    def readline(self):
        """One line, CRLF included. The socket timeout is the deadline."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        line += b"\r\n"
        self.transcript.append(b"S: " + line)
        return line

    def readline_unbuffered(self):
        """
        Reads one line a byte at a time, so that nothing after it is taken
        from the socket (used before a TLS handshake on the same socket).
        """
        assert not self.buf, self.buf
        line = b""
        while not line.endswith(b"\r\n"):
            b = self.sock.recv(1)
            if not b:
                raise EOFError("connection closed by server; transcript:\n%s" % self.dump())
            line += b
        self.transcript.append(b"S: " + line)
        return line

    def read_until_tagged(self, tag):
        """Returns (untagged and continuation lines, tagged line)."""
        lines = []
        prefix = tag.encode() + b" "
        while True:
            line = self.readline()
            if line.startswith(prefix):
                return lines, line
            lines.append(line)

    def command(self, tag, text):
        self.send(("%s %s\r\n" % (tag, text)).encode())
        return self.read_until_tagged(tag)

    def starttls(self, tag="s"):
        self.send(("%s STARTTLS\r\n" % tag).encode())
        line = self.readline_unbuffered()
        while not line.startswith(tag.encode() + b" "):
            line = self.readline_unbuffered()
        if not line.startswith(tag.encode() + b" OK"):
            raise AssertionError("STARTTLS refused: %r" % line)
        self.tls_handshake()
        return line

    def tls_handshake(self):
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=self.host)

    def login_plain_ir(self, tag, user, password):
        b64 = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.command(tag, "AUTHENTICATE PLAIN " + b64)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def dump(self):
        return b"".join(self.transcript[-30:]).decode("utf-8", "replace")


class RawPOP3(RawIMAP):
    """A line-level POP3 client: exact replies and protocol edge cases."""

    def command(self, text):
        """Sends one command; returns its status line (+OK, -ERR or +)."""
        self.send(text.encode() + b"\r\n")
        return self.readline()

    def multiline(self):
        """The lines of a multi-line reply after its status line, the final
        "." excluded, dot-stuffing undone."""
        lines = []
        while True:
            line = self.readline()
            if line == b".\r\n":
                return lines
            lines.append(line[1:] if line.startswith(b"..") else line)

    def capa(self):
        """CAPA: the capability lines, upper case, without CRLF."""
        status = self.command("CAPA")
        assert status.startswith(b"+OK"), self.dump()
        return [l.rstrip(b"\r\n").decode("utf-8", "replace").upper() for l in self.multiline()]

    def stls(self):
        self.send(b"STLS\r\n")
        line = self.readline_unbuffered()
        if not line.startswith(b"+OK"):
            raise AssertionError("STLS refused: %r" % line)
        self.tls_handshake()
        return line

    def login(self, user, password):
        status = self.command("USER " + user)
        if not status.startswith(b"+OK"):
            return status
        return self.command("PASS " + password)


class RawSMTP(RawIMAP):
    """A line-level SMTP client: exact replies and protocol edge cases."""

    @classmethod
    def connect(cls, addr, port, ctx, implicit=True, source=None):
        sock = socket.create_connection((addr, port), timeout=IO_TIMEOUT,
                                        source_address=(source, 0) if source else None)
        if implicit:
            sock = ctx.wrap_socket(sock, server_hostname=addr)
        c = cls(sock, ctx, addr)
        c.greeting = c.reply()
        return c

    def reply(self, unbuffered=False):
        """
        One reply, all its lines: (code, [text lines]), the code an int and
        each text line without code, separator and CRLF. A line that is not
        three digits, then "-" or " " and text, or CRLF (RFC 5321 4.2) fails
        the test.
        """
        lines = []
        while True:
            line = self.readline_unbuffered() if unbuffered else self.readline()
            mo = re.match(rb"(\d{3})(?:([ -])(.*))?\r\n\Z", line, re.S)
            assert mo, "malformed SMTP reply line %r\n%s" % (line, self.dump())
            lines.append((mo.group(3) or b"").decode("utf-8", "replace"))
            if mo.group(2) != b"-":
                return int(mo.group(1)), lines

    def command(self, text):
        self.send((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.reply()

    def ehlo(self, name="device.test"):
        """EHLO; returns (code, set of upper-case extension keywords, lines)."""
        code, lines = self.command("EHLO " + name)
        return code, set(l.split()[0].upper() for l in lines[1:] if l.split()), lines

    def starttls(self):
        self.send(b"STARTTLS\r\n")
        code, lines = self.reply(unbuffered=True)
        if code != 220:
            raise AssertionError("STARTTLS refused: %d %r" % (code, lines))
        self.tls_handshake()
        return code

    def auth_plain(self, user, password):
        return self.command("AUTH PLAIN " + plain_ir(user, password))


# --------------------------------------------------------------------------
# Messages


def make_message(subject, body_lines=None, size=None, seed=0):
    """
    An RFC 5322 message with CRLF line ends. With size, the body is base64
    lines of pseudo-random bytes making the message about `size` bytes.
    """
    head = ("From: Sender <sender@example.test>\r\n"
            "To: Alice <alice@example.test>\r\n"
            "Subject: %s\r\n"
            "Message-ID: <%s.%d@example.test>\r\n"
            "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n" % (subject, re.sub(r"\W", "", subject), seed))
    if size is None:
        body = "\r\n".join(body_lines or ["Hello from the e2e tests."]) + "\r\n"
        return (head + "Content-Type: text/plain\r\n\r\n" + body).encode()
    head += "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw_len = size * 3 // 4
    rnd = random.Random(seed)
    data = rnd.randbytes(raw_len)
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return head.encode() + b64


def tagged_ok(line, tag):
    return line.startswith(tag.encode() + b" OK")


def capabilities(line):
    """
    The capability names in a greeting or tagged reply carrying
    [CAPABILITY ...], or in an untagged `* CAPABILITY ...` line; upper case.
    None when the line carries none.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    mo = re.search(r"\[CAPABILITY ([^\]]*)\]", line, re.I)
    if mo:
        return set(mo.group(1).upper().split())
    mo = re.match(r"\* CAPABILITY (.*)", line.strip(), re.I)
    if mo:
        return set(mo.group(1).upper().split())
    return None


def plain_ir(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
