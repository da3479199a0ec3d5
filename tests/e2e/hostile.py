"""
Scripted hostile providers for mailgate's hardening tests, and the few
measurements of the gateway process those tests share.

A real Dovecot or Postfix cannot misbehave on purpose: inject a response
before its TLS handshake, greet with PREAUTH, hide STARTTLS, answer garbage,
hang, or drop a connection in the middle of a literal. A HostileProvider is a
small threaded TLS server on a loopback address (127.0.0.2 by default, which
the test CA's provider certificate names) whose behaviour per connection is a
script: a callable given a HostileConn. Every byte the gateway sends is
recorded with the phase it arrived in (plaintext before TLS, or inside TLS),
so that tests can assert that no credential ever left the gateway in the
clear, or at all.

IMAPFake, POP3Fake and SMTPFake are well-behaved servers for the three
protocols with switches for the attacks (inject=, greeting=, offer_tls=,
refuse=, and for IMAP messages and a close in the middle of a FETCH).
silent() and garbage() are the provider faults.

FastIMAP is the other kind of fake: an asyncio IMAP server in its own
process (`python3 hostile.py fast-imap ...`), for thousands of sessions at
once; it knows one login and answers NOOP, CAPABILITY, SELECT and LOGOUT.

The hardening tests also share, from here: the gateway process seen from
/proc (fd_count, rss_kb, proc_status), dedicated gateways (new_gateway,
running_gateway: started, users added, stopped, clean exit checked), and
the device's side the same way on IMAP, POP3 and SMTP (device, login,
probe, wait_closed, and the reply patterns REFUSED, WELCOME, LOGIN_OK,
AUTH_FAILED, TEMP_FAIL).

Nothing here sleeps to synchronise: waits are on a condition with a
deadline (harness.wait_for), blocking reads carry a socket timeout.
"""

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PROVIDER_ADDR, HarnessError, free_port, port_accepts, read_text,  # noqa: E402
                     stop_process, tail, wait_for)

# How long a fake waits for the gateway's next bytes before it gives up on
# the connection. Longer than any timeout a test configures in the gateway.
CONN_TIMEOUT = 60.0
PROTOS = ("imap", "pop3", "smtp")


class HostileError(Exception):
    pass


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data)


def secret_forms(login, password):
    """
    The ways a credential can travel: the password itself, SASL PLAIN (with
    and without the login), and the base64 password of AUTH LOGIN.
    """
    return [password.encode(), b64(password),
            b64(b"\0" + login.encode() + b"\0" + password.encode())]


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def make_leaf(ca, name, cn, san, other_ca=False):
    """A new certificate from the test CA, or the unrelated one (a fresh serial): (cert, key) paths."""
    key = os.path.join(ca.dir, name + ".key")
    cert = os.path.join(ca.dir, name + ".crt")
    ca._make_leaf(name, key, cert, cn, san, other_ca=other_ca)
    os.chmod(key, 0o644)
    return cert, key


# --------------------------------------------------------------------------
# One connection to a fake provider


class HostileConn:
    """
    The provider's side of one connection. Reads before TLS take one byte at
    a time, so that nothing of a TLS ClientHello that follows a STARTTLS
    command is consumed (and so that what the gateway sent in plaintext is
    recorded exactly). `received` is a list of [phase, bytearray] with phase
    "plain" or "tls", consecutive bytes of one phase merged.
    """

    def __init__(self, provider, sock, peer):
        self.provider = provider
        self.sock = sock
        self.peer = peer
        self.tls = False
        self.tls_error = None
        self.error = None
        self.buf = b""
        self.received = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = None

    # -- what was received --

    def _record(self, data):
        phase = "tls" if self.tls else "plain"
        with self.lock:
            if self.received and self.received[-1][0] == phase:
                self.received[-1][1] += data
            else:
                self.received.append([phase, bytearray(data)])

    def plain_bytes(self):
        with self.lock:
            return b"".join(bytes(d) for p, d in self.received if p == "plain")

    def tls_bytes(self):
        with self.lock:
            return b"".join(bytes(d) for p, d in self.received if p == "tls")

    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(d) for _, d in self.received)

    # -- I/O --

    def recv(self, n=65536):
        """Some bytes (b"" at EOF), recorded."""
        if not self.tls:
            n = 1
        data = self.sock.recv(n)
        if data:
            self._record(data)
        return data

    def readline(self):
        """One line, LF included; EOFError when the gateway closed first."""
        while b"\n" not in self.buf:
            data = self.recv()
            if not data:
                raise EOFError("gateway closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def read_exact(self, n):
        while len(self.buf) < n:
            data = self.recv()
            if not data:
                raise EOFError("gateway closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def start_tls(self):
        """
        The server side of a TLS handshake on this connection. After a
        STARTTLS reply, a first byte that is not a TLS handshake record means
        the gateway sent something in plaintext after the command: recorded,
        and the connection fails.
        """
        if self.buf:
            raise HostileError("plaintext pipelined after STARTTLS: %r" % self.buf)
        first = self.sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise EOFError("gateway closed instead of starting TLS")
        if first != b"\x16":
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                data = b""
            self._record(data)
            raise HostileError("plaintext instead of a TLS handshake: %r" % data[:200])
        try:
            self.sock = self.provider.context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.tls_error = e
            raise
        self.tls = True

    def hold(self):
        """Answers nothing; records whatever comes until the gateway closes."""
        while self.recv():
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# The server


class HostileProvider:
    """
    A threaded TCP server on addr:port (port chosen free), one thread per
    connection running `script(conn)`. tls is "implicit" (the handshake
    is done before the script runs, unless the script has an attribute
    before_tls=True) or "starttls" (the script calls conn.start_tls()).
    reset(script) switches the behaviour for the connections that follow and
    forgets the ones recorded so far.
    """

    def __init__(self, ca, proto, tls, addr=PROVIDER_ADDR, cert=None, key=None):
        self.ca = ca
        self.proto = proto
        self.tls = tls
        self.addr = addr
        self.port = free_port(addr)
        self.default_context = server_context(cert or ca.provider_cert, key or ca.provider_key)
        self.context = self.default_context
        self.script = None
        self.conns = []
        self.lock = threading.Lock()
        self.listener = None
        self.thread = None
        self.stopping = False

    def start(self):
        """Listens (again, after stop(), on the same port)."""
        self.stopping = False
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(1024)
        self.listener = s
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="hostile-%s-%s" % (self.proto, self.tls))
        self.thread.start()
        return self

    def reset(self, script, context=None):
        with self.lock:
            self.script = script
            self.context = context or self.default_context
            self.conns = []

    def _accept_loop(self):
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            if self.stopping:
                sock.close()
                return
            sock.settimeout(CONN_TIMEOUT)
            conn = HostileConn(self, sock, peer)
            with self.lock:
                script = self.script
                self.conns.append(conn)
            conn.thread = threading.Thread(target=self._serve, args=(conn, script), daemon=True)
            conn.thread.start()

    def _serve(self, conn, script):
        try:
            if self.tls == "implicit" and not getattr(script, "before_tls", False):
                conn.start_tls()
            if script is None:
                conn.hold()
            else:
                script(conn)
        except (EOFError, OSError, ssl.SSLError, HostileError) as e:
            conn.error = e
        except Exception as e:  # a bug in the script: keep it for the test to see
            conn.error = e
        finally:
            conn.close()
            conn.done.set()

    def stop(self):
        self.stopping = True
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
        if self.thread is not None:
            self.thread.join(5)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close()
        for c in conns:
            if c.thread is not None:
                c.thread.join(5)

    # -- what the provider saw --

    def connections(self):
        with self.lock:
            return list(self.conns)

    def wait_connections(self, n, deadline=10.0):
        return wait_for(lambda: len(self.connections()) >= n and self.connections(), deadline,
                        "%d connection(s) to the fake %s provider" % (n, self.proto))

    def wait_done(self, deadline=10.0):
        """Waits until every connection so far has ended."""
        wait_for(lambda: all(c.done.is_set() for c in self.connections()), deadline,
                 "the fake %s provider's connections to end" % self.proto)

    def plain_bytes(self):
        return b"".join(c.plain_bytes() for c in self.connections())

    def tls_bytes(self):
        return b"".join(c.tls_bytes() for c in self.connections())

    def all_bytes(self):
        return b"".join(c.all_bytes() for c in self.connections())

    def endpoint_yaml(self):
        return "{ host: %s, port: %d, tls: %s }" % (self.addr, self.port, self.tls)


class FakeSet:
    """
    Six fakes, one per protocol and TLS mode, and the YAML of two gateway
    providers made of them: `fake` (implicit TLS) and `fake-starttls`.
    """

    NAMES = {"implicit": "fake", "starttls": "fake-starttls"}

    def __init__(self, ca, addr=PROVIDER_ADDR):
        self.ca = ca
        self.fakes = {(p, t): HostileProvider(ca, p, t, addr=addr)
                      for p in PROTOS for t in ("implicit", "starttls")}

    def start(self):
        for f in self.fakes.values():
            f.start()
        return self

    def stop(self):
        for f in self.fakes.values():
            f.stop()

    def __getitem__(self, key):
        return self.fakes[key]

    def providers_yaml(self):
        out = []
        for tls, name in self.NAMES.items():
            out.append("  %s:" % name)
            for p in PROTOS:
                out.append("    %s: %s" % (p, self.fakes[(p, tls)].endpoint_yaml()))
            out.append("    ca_file: %s" % self.ca.ca_cert)
        return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Faults


def silent():
    """Accepts and never answers: not even the TLS handshake."""
    def script(conn):
        conn.hold()
    script.before_tls = True
    return script


def garbage(data=b"\x00\x01HTTP/1.1 400 Bad Request\r\nServer: nonsense\r\n\r\n"):
    """After TLS (if any), answers with bytes of no protocol, then holds."""
    def script(conn):
        conn.send(data)
        conn.hold()
    return script


# --------------------------------------------------------------------------
# Messages the fakes serve


class BigMessage:
    """
    A message of exactly `size` bytes (CRLF lines of base64 text), made by
    repeating one pseudo-random block: cheap to stream at any size, with its
    SHA-256 known.
    """

    BLOCK_LINES = 8192

    def __init__(self, size, seed=1):
        import random
        rnd = random.Random(seed)
        head = (b"From: big@example.test\r\nTo: alice@example.test\r\nSubject: big %d\r\n"
                b"Message-ID: <big.%d@example.test>\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" % (size, seed))
        lines = base64.encodebytes(rnd.randbytes(57 * self.BLOCK_LINES)).replace(b"\n", b"\r\n")
        self.head = head
        self.block = lines
        self.size = size
        assert size > len(head) + 2
        self._sha = None

    def chunks(self, chunk=1 << 20):
        """The message in pieces of about `chunk` bytes."""
        yield self.head
        left = self.size - len(self.head)
        block = self.block
        while left > 0:
            piece = block[:min(left, len(block))]
            if left <= len(block) and len(piece) >= 2:
                piece = piece[:-2] + b"\r\n"
            yield piece
            left -= len(piece)

    def sha256(self):
        if self._sha is None:
            h = hashlib.sha256()
            for c in self.chunks():
                h.update(c)
            self._sha = h.hexdigest()
        return self._sha


def as_message(m):
    if isinstance(m, BigMessage):
        return m
    data = m

    class Small:
        size = len(data)

        def chunks(self):
            yield data
    return Small()


# --------------------------------------------------------------------------
# IMAP


IMAP_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"|\{(\d+)(\+?)\}\r?\n\Z|([^\s()"{]+)|([()]))')


class IMAPFake:
    """
    An IMAP provider. accounts: {login: password}. Options:
      greeting      bytes replacing the greeting (e.g. a PREAUTH)
      offer_tls     False: no STARTTLS in the capabilities (STARTTLS mode)
      inject        callable(tag) -> bytes written in the same packet as the
                    STARTTLS OK, before the handshake
      refuse        True: every login is refused with NO
      messages      [bytes or BigMessage], INBOX's messages 1..n
      cut_fetch_at  close the connection after this many literal bytes of a
                    FETCH, in the middle of the literal
    """

    PRE_TLS_CAPS = "IMAP4rev1 STARTTLS LOGINDISABLED"
    CAPS = "IMAP4rev1 SASL-IR LITERAL+ ID IDLE AUTH=PLAIN"

    def __init__(self, accounts, greeting=None, offer_tls=True, inject=None, refuse=False,
                 messages=(), cut_fetch_at=None):
        self.accounts = dict(accounts)
        self.greeting = greeting
        self.offer_tls = offer_tls
        self.inject = inject
        self.refuse = refuse
        self.messages = [as_message(m) for m in messages]
        self.cut_fetch_at = cut_fetch_at
        self.logins = []

    def caps(self, conn):
        if conn.tls:
            return self.CAPS
        if self.offer_tls:
            return self.PRE_TLS_CAPS
        # No STARTTLS, and AUTH=PLAIN offered in the clear: the bait a
        # gateway that falls back to plaintext would take.
        return "IMAP4rev1 AUTH=PLAIN"

    def read_command(self, conn):
        """(tag, name upper, [args]) with literals read; quoted strings unquoted."""
        line = conn.readline()
        parts = line.rstrip(b"\r\n").split(b" ", 2)
        tag = parts[0]
        name = parts[1].upper() if len(parts) > 1 else b""
        rest = (parts[2] if len(parts) > 2 else b"") + b"\r\n"
        if name == b"UID" and rest.strip():
            sub, _, rest2 = rest.partition(b" ")
            name = b"UID " + sub.strip().upper()
            rest = rest2 if rest2 else b"\r\n"
        args = []
        pos = 0
        while True:
            m = IMAP_TOKEN.match(rest, pos)
            if not m or m.end() == pos:
                break
            pos = m.end()
            if m.group(1) is not None:
                args.append(re.sub(rb"\\(.)", rb"\1", m.group(1)))
            elif m.group(2) is not None:
                n = int(m.group(2))
                if not m.group(3):
                    conn.send(b"+ go ahead\r\n")
                args.append(conn.read_exact(n))
                rest = conn.readline()
                pos = 0
            elif m.group(4) is not None:
                args.append(m.group(4))
            else:
                args.append(m.group(5))
        return tag, name, args

    def check(self, login, password):
        self.logins.append(login)
        return not self.refuse and self.accounts.get(login) == password

    def __call__(self, conn):
        if self.greeting is not None:
            conn.send(self.greeting)
        else:
            conn.send(b"* OK [CAPABILITY %s] fake IMAP ready\r\n" % self.caps(conn).encode())
        authed = False
        selected = False
        while True:
            tag, name, args = self.read_command(conn)
            t = tag
            if name == b"CAPABILITY":
                conn.send(b"* CAPABILITY %s\r\n%s OK done\r\n" % (self.caps(conn).encode(), t))
            elif name == b"STARTTLS" and not conn.tls and conn.provider.tls == "starttls" \
                    and self.offer_tls:
                extra = self.inject(t.decode()) if self.inject else b""
                conn.send(b"%s OK begin TLS\r\n" % t + extra)
                conn.start_tls()
            elif name == b"LOGIN" and len(args) >= 2:
                if not conn.tls:
                    conn.send(b"%s NO [PRIVACYREQUIRED] not without TLS\r\n" % t)
                elif self.check(args[0].decode(), args[1].decode()):
                    authed = True
                    conn.send(b"%s OK [CAPABILITY %s] logged in\r\n" % (t, self.CAPS.encode()))
                else:
                    conn.send(b"%s NO [AUTHENTICATIONFAILED] bad credentials\r\n" % t)
            elif name == b"AUTHENTICATE" and args and args[0].upper() == b"PLAIN":
                if len(args) >= 2:
                    resp = args[1]
                else:
                    conn.send(b"+ \r\n")
                    resp = conn.readline().strip()
                try:
                    _, login, password = base64.b64decode(resp).split(b"\0")
                except ValueError:
                    conn.send(b"%s BAD bad base64\r\n" % t)
                    continue
                if conn.tls and self.check(login.decode(), password.decode()):
                    authed = True
                    conn.send(b"%s OK [CAPABILITY %s] logged in\r\n" % (t, self.CAPS.encode()))
                else:
                    conn.send(b"%s NO [AUTHENTICATIONFAILED] bad credentials\r\n" % t)
            elif name == b"NOOP":
                conn.send(b"%s OK NOOP done\r\n" % t)
            elif name == b"ID":
                conn.send(b'* ID ("name" "fake")\r\n%s OK ID done\r\n' % t)
            elif name == b"LOGOUT":
                conn.send(b"* BYE fake logging out\r\n%s OK LOGOUT done\r\n" % t)
                return
            elif authed and name in (b"SELECT", b"EXAMINE"):
                n = len(self.messages)
                selected = True
                conn.send(b"* FLAGS (\\Seen \\Deleted)\r\n* %d EXISTS\r\n* 0 RECENT\r\n"
                          b"* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                          b"%s OK [READ-WRITE] selected\r\n" % (n, n + 1, t))
            elif authed and selected and name in (b"FETCH", b"UID FETCH"):
                self.fetch(conn, t, name, args)
            elif authed:
                conn.send(b"%s OK %s done\r\n" % (t, name))
            else:
                conn.send(b"%s BAD not now\r\n" % t)

    def fetch(self, conn, t, name, args):
        try:
            n = int(args[0])
            msg = self.messages[n - 1]
        except (ValueError, IndexError):
            conn.send(b"%s OK nothing\r\n" % t)
            return
        uid = b"UID %d " % n if name.startswith(b"UID") else b""
        conn.send(b"* %d FETCH (%sBODY[] {%d}\r\n" % (n, uid, msg.size))
        sent = 0
        for chunk in msg.chunks():
            if self.cut_fetch_at is not None and sent + len(chunk) >= self.cut_fetch_at:
                conn.send(chunk[:self.cut_fetch_at - sent])
                raise HostileError("closing in the middle of the FETCH, as scripted")
            conn.send(chunk)
            sent += len(chunk)
        conn.send(b")\r\n%s OK FETCH done\r\n" % t)


# --------------------------------------------------------------------------
# POP3


class POP3Fake:
    """
    A POP3 provider (STLS, CAPA, AUTH PLAIN, USER/PASS, STAT, LIST, RETR).
    Options as IMAPFake's: greeting, offer_tls, inject (bytes after the STLS
    +OK), refuse, messages, cut_retr_at.
    """

    def __init__(self, accounts, greeting=None, offer_tls=True, inject=b"", refuse=False,
                 messages=(), cut_retr_at=None):
        self.accounts = dict(accounts)
        self.greeting = greeting
        self.offer_tls = offer_tls
        self.inject = inject
        self.refuse = refuse
        self.messages = list(messages)
        self.cut_retr_at = cut_retr_at
        self.logins = []

    def check(self, login, password):
        self.logins.append(login)
        return not self.refuse and self.accounts.get(login) == password

    def capa(self, conn):
        lines = [b"USER", b"SASL PLAIN", b"PIPELINING", b"UIDL"]
        if not conn.tls and self.offer_tls and conn.provider.tls == "starttls":
            lines.append(b"STLS")
        return b"+OK capabilities\r\n" + b"".join(l + b"\r\n" for l in lines) + b".\r\n"

    def __call__(self, conn):
        conn.send(self.greeting if self.greeting is not None else b"+OK fake POP3 ready\r\n")
        authed = False
        user = None
        while True:
            line = conn.readline().rstrip(b"\r\n")
            cmd, _, arg = line.partition(b" ")
            cmd = cmd.upper()
            if cmd == b"CAPA":
                conn.send(self.capa(conn))
            elif cmd == b"STLS" and not conn.tls and conn.provider.tls == "starttls" \
                    and self.offer_tls:
                conn.send(b"+OK begin TLS\r\n" + self.inject)
                conn.start_tls()
            elif cmd == b"STLS":
                conn.send(b"-ERR STLS not available\r\n")
            elif cmd == b"USER" and not authed:
                user = arg
                conn.send(b"+OK send PASS\r\n")
            elif cmd == b"PASS" and not authed and user is not None:
                if conn.tls and self.check(user.decode(), arg.decode()):
                    authed = True
                    conn.send(b"+OK logged in\r\n")
                else:
                    conn.send(b"-ERR [AUTH] bad credentials\r\n")
            elif cmd == b"AUTH" and not authed:
                mech, _, ir = arg.partition(b" ")
                if mech.upper() != b"PLAIN":
                    conn.send(b"-ERR unsupported mechanism\r\n")
                    continue
                if not ir:
                    conn.send(b"+ \r\n")
                    ir = conn.readline().strip()
                try:
                    _, login, password = base64.b64decode(ir).split(b"\0")
                except ValueError:
                    conn.send(b"-ERR bad base64\r\n")
                    continue
                if conn.tls and self.check(login.decode(), password.decode()):
                    authed = True
                    conn.send(b"+OK logged in\r\n")
                else:
                    conn.send(b"-ERR [AUTH] bad credentials\r\n")
            elif cmd == b"QUIT":
                conn.send(b"+OK bye\r\n")
                return
            elif cmd == b"NOOP" and authed:
                conn.send(b"+OK\r\n")
            elif cmd == b"STAT" and authed:
                total = sum(as_message(m).size for m in self.messages)
                conn.send(b"+OK %d %d\r\n" % (len(self.messages), total))
            elif cmd == b"LIST" and authed:
                out = b"+OK scan listing\r\n"
                for i, m in enumerate(self.messages, 1):
                    out += b"%d %d\r\n" % (i, as_message(m).size)
                conn.send(out + b".\r\n")
            elif cmd == b"RETR" and authed:
                self.retr(conn, arg)
            else:
                conn.send(b"-ERR not now\r\n")

    def retr(self, conn, arg):
        try:
            m = as_message(self.messages[int(arg) - 1])
        except (ValueError, IndexError):
            conn.send(b"-ERR no such message\r\n")
            return
        conn.send(b"+OK %d octets\r\n" % m.size)
        sent = 0
        for chunk in m.chunks():
            # Our messages have no line starting with a dot: no stuffing.
            if self.cut_retr_at is not None and sent + len(chunk) >= self.cut_retr_at:
                conn.send(chunk[:self.cut_retr_at - sent])
                raise HostileError("closing in the middle of RETR, as scripted")
            conn.send(chunk)
            sent += len(chunk)
        conn.send(b".\r\n")


# --------------------------------------------------------------------------
# SMTP


class SMTPFake:
    """
    An SMTP submission provider (EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL,
    RCPT, DATA). Options: greeting, offer_tls, inject (bytes after the
    STARTTLS 220), refuse. Messages received are kept in `received_mail`.
    """

    def __init__(self, accounts, greeting=None, offer_tls=True, inject=b"", refuse=False):
        self.accounts = dict(accounts)
        self.greeting = greeting
        self.offer_tls = offer_tls
        self.inject = inject
        self.refuse = refuse
        self.logins = []
        self.received_mail = []

    def check(self, login, password):
        self.logins.append(login)
        return not self.refuse and self.accounts.get(login) == password

    def ehlo(self, conn):
        lines = [b"fake.test", b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES",
                 b"SIZE 300000000"]
        if not conn.tls and conn.provider.tls == "starttls" and self.offer_tls:
            lines.append(b"STARTTLS")
        else:
            # Before TLS only when STARTTLS is withheld: the bait.
            lines.append(b"AUTH PLAIN LOGIN")
        return b"".join(b"250%s%s\r\n" % (b"-" if i < len(lines) - 1 else b" ", l)
                        for i, l in enumerate(lines))

    def auth_ok(self, conn, login, password):
        if conn.tls and self.check(login, password):
            conn.send(b"235 2.7.0 Authentication successful\r\n")
            return True
        conn.send(b"535 5.7.8 Authentication credentials invalid\r\n")
        return False

    def __call__(self, conn):
        conn.send(self.greeting if self.greeting is not None else b"220 fake.test ESMTP ready\r\n")
        authed = False
        while True:
            line = conn.readline().rstrip(b"\r\n")
            cmd, _, arg = line.partition(b" ")
            cmd = cmd.upper()
            if cmd in (b"EHLO", b"HELO"):
                conn.send(self.ehlo(conn))
            elif cmd == b"STARTTLS" and not conn.tls and conn.provider.tls == "starttls" \
                    and self.offer_tls:
                conn.send(b"220 2.0.0 Ready to start TLS\r\n" + self.inject)
                conn.start_tls()
            elif cmd == b"STARTTLS":
                conn.send(b"454 4.7.0 TLS not available\r\n")
            elif cmd == b"AUTH" and not authed:
                mech, _, ir = arg.partition(b" ")
                mech = mech.upper()
                try:
                    if mech == b"PLAIN":
                        if not ir:
                            conn.send(b"334 \r\n")
                            ir = conn.readline().strip()
                        _, login, password = base64.b64decode(ir).split(b"\0")
                    elif mech == b"LOGIN":
                        if not ir:
                            conn.send(b"334 VXNlcm5hbWU6\r\n")
                            ir = conn.readline().strip()
                        login = base64.b64decode(ir)
                        conn.send(b"334 UGFzc3dvcmQ6\r\n")
                        password = base64.b64decode(conn.readline().strip())
                    else:
                        conn.send(b"504 5.5.4 unsupported mechanism\r\n")
                        continue
                except ValueError:
                    conn.send(b"501 5.5.2 bad base64\r\n")
                    continue
                authed = self.auth_ok(conn, login.decode(), password.decode())
            elif cmd in (b"RSET", b"NOOP") or (authed and cmd in (b"MAIL", b"RCPT")):
                conn.send(b"250 2.0.0 OK\r\n")
            elif cmd == b"DATA" and authed:
                conn.send(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += conn.readline()
                self.received_mail.append(data[:-3])
                conn.send(b"250 2.0.0 queued as FAKE\r\n")
            elif cmd == b"QUIT":
                conn.send(b"221 2.0.0 bye\r\n")
                return
            else:
                conn.send(b"530 5.7.0 not now\r\n")


def fake_for(proto, accounts, **kw):
    return {"imap": IMAPFake, "pop3": POP3Fake, "smtp": SMTPFake}[proto](accounts, **kw)


# --------------------------------------------------------------------------
# FastIMAP: an asyncio IMAP server in its own process, for load


async def _fast_imap_session(reader, writer, login, password, stats):
    caps = b"IMAP4rev1 SASL-IR LITERAL+ ID IDLE AUTH=PLAIN"
    stats["sessions"] += 1
    stats["open"] += 1
    try:
        writer.write(b"* OK [CAPABILITY %s] fast fake ready\r\n" % caps)
        authed = False
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.rstrip(b"\r\n").split(b" ", 2)
            tag = parts[0]
            name = parts[1].upper() if len(parts) > 1 else b""
            arg = parts[2] if len(parts) > 2 else b""
            if name == b"CAPABILITY":
                writer.write(b"* CAPABILITY %s\r\n%s OK done\r\n" % (caps, tag))
            elif name == b"AUTHENTICATE":
                mech, _, ir = arg.partition(b" ")
                if not ir:
                    writer.write(b"+ \r\n")
                    ir = (await reader.readline()).strip()
                try:
                    _, lg, pw = base64.b64decode(ir).split(b"\0")
                except ValueError:
                    lg = pw = b""
                authed = lg.decode() == login and pw.decode() == password
                writer.write(b"%s %s\r\n" % (tag, b"OK [CAPABILITY " + caps + b"] in" if authed
                                             else b"NO [AUTHENTICATIONFAILED] no"))
            elif name == b"LOGIN":
                toks = re.findall(rb'"((?:[^"\\]|\\.)*)"|(\S+)', arg)
                vals = [re.sub(rb"\\(.)", rb"\1", q) if q else a for q, a in toks]
                authed = (len(vals) == 2 and vals[0].decode() == login
                          and vals[1].decode() == password)
                writer.write(b"%s %s\r\n" % (tag, b"OK [CAPABILITY " + caps + b"] in" if authed
                                             else b"NO [AUTHENTICATIONFAILED] no"))
            elif name == b"LOGOUT":
                writer.write(b"* BYE bye\r\n%s OK done\r\n" % tag)
                await writer.drain()
                return
            elif name in (b"SELECT", b"EXAMINE") and authed:
                writer.write(b"* FLAGS ()\r\n* 0 EXISTS\r\n* 0 RECENT\r\n"
                             b"* OK [UIDVALIDITY 1] ok\r\n%s OK [READ-WRITE] done\r\n" % tag)
            elif authed or name in (b"NOOP", b"ID"):
                if name == b"NOOP":
                    stats["noops"] += 1
                writer.write(b"%s OK done\r\n" % tag)
            else:
                writer.write(b"%s BAD not now\r\n" % tag)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        return
    finally:
        stats["open"] -= 1
        writer.close()


def _fast_imap_main(addr, port, cert, key, login, password, status_path):
    """Runs until SIGTERM; writes its counters to status_path every second."""
    import signal
    resource = __import__("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = {"sessions": 0, "open": 0, "noops": 0}
    ctx = server_context(cert, key)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await asyncio.start_server(
            lambda r, w: _fast_imap_session(r, w, login, password, stats),
            addr, int(port), ssl=ctx, backlog=4096)

        async def report():
            while not stop.is_set():
                tmp = status_path + ".tmp"
                with open(tmp, "w") as f:
                    f.write("%(sessions)d %(open)d %(noops)d\n" % stats)
                os.replace(tmp, status_path)
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)  # a reporting period, not a sync
                except asyncio.TimeoutError:
                    pass
        async with server:
            await report()
    asyncio.run(main())


class FastIMAP:
    """The asyncio fake IMAP provider as our child process, stopped by its PID."""

    def __init__(self, ca, dir, login, password, addr=PROVIDER_ADDR):
        self.ca = ca
        self.dir = dir
        self.addr = addr
        self.port = free_port(addr)
        self.login = login
        self.password = password
        self.status_path = os.path.join(dir, "fastimap.status")
        self.log_path = os.path.join(dir, "fastimap.log")
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "fast-imap", self.addr, str(self.port),
             self.ca.provider_cert, self.ca.provider_key, self.login, self.password,
             self.status_path],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: port_accepts(self.addr, self.port), 10.0, "the fast fake IMAP provider",
                 proc=self.proc, log=lambda: read_text(self.log_path))
        return self

    def stats(self):
        """(sessions ever, sessions open, NOOPs answered), as last reported."""
        try:
            with open(self.status_path) as f:
                a, b, c = f.read().split()
            return int(a), int(b), int(c)
        except (OSError, ValueError):
            return (0, 0, 0)

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def endpoint_yaml(self):
        return "{ host: %s, port: %d, tls: implicit }" % (self.addr, self.port)


# --------------------------------------------------------------------------
# The gateway process, seen from /proc


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kb(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def raise_nofile(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_clean_exit(gw):
    """What the gateway fixture checks after a module: a clean exit, no sanitizer report."""
    log = gw.log_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "loop still had open handles"):
        assert marker not in log, "gateway log has %r:\n%s" % (marker, tail(log))
    assert gw.proc.returncode == 0, "gateway exited with %s:\n%s" % (gw.proc.returncode, tail(log))


@contextlib.contextmanager
def running_gateway(gw, users=(), before_run=None):
    """
    Starts gw (a harness.Gateway), adds users [(name, password, provider,
    login, app_password)], yields it, stops it and checks a clean exit (only
    when the body succeeded: a failing test keeps its own message).
    """
    try:
        gw.start(before_run=before_run)
        for name, pw, prov, login, app in users:
            gw.add_user(name, pw)
            gw.set_account(name, prov, login, app)
    except HarnessError:
        gw.stop()
        raise
    try:
        yield gw
    finally:
        gw.stop()
    check_clean_exit(gw)


# --------------------------------------------------------------------------
# The device's side, the same way on the three protocols


_gw_names = iter(range(1, 1 << 30))


def new_gateway(workdir, ca, dovecot, postfix, tag="hg", **kw):
    """A harness.Gateway in a fresh directory under workdir (not started)."""
    from harness import Gateway
    d = os.path.join(workdir, "%s%d" % (tag, next(_gw_names)))
    while os.path.exists(d):
        d = os.path.join(workdir, "%s%d" % (tag, next(_gw_names)))
    os.makedirs(d, mode=0o755)
    return Gateway(d, ca, dovecot, postfix, **kw)


def device(gw, proto, tls="implicit", source=None):
    """A raw client of gw: "implicit", "starttls" (STARTTLS done) or "plain"."""
    return {"imap": gw.raw, "pop3": gw.raw_pop3, "smtp": gw.raw_smtp}[proto](tls, source=source)


def greeting_text(proto, c):
    if proto == "smtp":
        code, lines = c.greeting
        return ("%d %s" % (code, "\n".join(lines))).encode()
    return c.greeting


# The reply a refused connection gets instead of a greeting.
REFUSED = {"imap": re.compile(rb"\A\* BYE \S"), "pop3": re.compile(rb"\A-ERR \[SYS/TEMP\] \S"),
           "smtp": re.compile(rb"\A421 4\.7\.0 \S")}
WELCOME = {"imap": re.compile(rb"\A\* OK"), "pop3": re.compile(rb"\A\+OK"),
           "smtp": re.compile(rb"\A220 ")}
LOGIN_OK = {"imap": re.compile(rb"\Aa OK"), "pop3": re.compile(rb"\A\+OK"),
            "smtp": re.compile(rb"\A235 ")}
AUTH_FAILED = {"imap": re.compile(rb"\Aa NO \[AUTHENTICATIONFAILED\]"),
               "pop3": re.compile(rb"\A-ERR \[AUTH\]"), "smtp": re.compile(rb"\A535 5\.7\.8")}
TEMP_FAIL = {"imap": re.compile(rb"\Aa NO \[UNAVAILABLE\] \S"),
             "pop3": re.compile(rb"\A-ERR \[SYS/TEMP\] \S"),
             "smtp": re.compile(rb"\A454 4\.7\.0 \S")}
HOWS = {"imap": ("login", "plain"), "pop3": ("user", "plain"), "smtp": ("plain", "login")}


def smtp_text(code_lines):
    code, lines = code_lines
    return ("%d %s" % (code, "\n".join(lines))).encode()


def login(c, proto, user, password, how=None):
    """
    Logs in on an open client; returns the final reply as bytes (for SMTP
    "CODE text", lines joined by newlines). how: HOWS[proto].
    """
    how = how or HOWS[proto][0]
    ir = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    if proto == "imap":
        if how == "login":
            q = lambda v: '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
            return c.command("a", "LOGIN %s %s" % (q(user), q(password)))[1]
        return c.command("a", "AUTHENTICATE PLAIN " + ir)[1]
    if proto == "pop3":
        if how == "user":
            status = c.command("USER " + user)
            if not status.startswith(b"+OK"):
                return status
            return c.command("PASS " + password)
        return c.command("AUTH PLAIN " + ir)
    code, _, _ = c.ehlo()
    assert code == 250, c.dump()
    if how == "plain":
        return smtp_text(c.command("AUTH PLAIN " + ir))
    r = c.command("AUTH LOGIN " + b64(user).decode())
    if r[0] != 334:
        return smtp_text(r)
    return smtp_text(c.command(b64(password).decode()))


def probe(c, proto):
    """A harmless command after login; True when it is answered positively."""
    if proto == "imap":
        return c.command("p", "NOOP")[1].startswith(b"p OK")
    if proto == "pop3":
        return c.command("NOOP").startswith(b"+OK")
    return c.command("NOOP")[0] == 250


def wait_closed(c, deadline=10.0):
    """
    Reads until the gateway closes the connection; returns what came
    before. A read that times out (the socket's own deadline) or a deadline
    overrun fails.
    """
    lines = []
    end = time.monotonic() + deadline
    while True:
        try:
            lines.append(c.readline())
        except EOFError:
            return lines
        except ConnectionResetError:
            lines.append(b"<reset>")
            return lines
        except socket.timeout:
            raise AssertionError("the gateway did not close the connection; transcript:\n%s"
                                 % c.dump())
        if time.monotonic() > end:
            raise AssertionError("the gateway kept talking instead of closing:\n%s" % c.dump())


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "fast-imap":
        _fast_imap_main(*sys.argv[2:])
    else:
        sys.stderr.write("usage: hostile.py fast-imap ADDR PORT CERT KEY LOGIN PASSWORD STATUS\n")
        sys.exit(2)
