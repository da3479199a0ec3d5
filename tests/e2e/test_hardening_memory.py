"""
Bounded memory and no leaks (issue 5).

- A slow device downloading a 200 MB message from a fast provider: the
  gateway must not read ahead of the device; its RSS stays within a small
  ceiling above what it was before the download, and the message arrives
  complete (length and SHA-256). The provider is a scripted fake
  (hostile.IMAPFake), which serves the message as fast as the gateway
  takes it.
- A device that pipelines commands without ever reading the replies,
  before and after login: the gateway must stop reading it (or close it)
  rather than queue replies without bound.
- Devices that hang up in the middle of an APPEND literal, of a literal
  before login, or of SMTP DATA: the gateway's open file descriptors go
  back to what they were, and it keeps serving.
"""

import hashlib
import os
import select
import secrets
import time

import ssl

import pytest

from harness import ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, wait_for
from hostile import (LOGIN_OK, PROTOS, BigMessage, HostileProvider, IMAPFake, device, fd_count,
                     login, new_gateway, probe, rss_kb, running_gateway)

BIG = 200 * 1024 * 1024
RSS_CEILING_KB = 32 * 1024
SLOW_SECONDS = 4.0


def stable(f, for_seconds=0.5, deadline=10.0, what="a stable value"):
    """
    Waits until f() has returned the same value for for_seconds (polling),
    and returns it: a baseline taken when nothing is still closing.
    """
    state = {"v": None, "since": 0.0}

    def check():
        v, now = f(), time.monotonic()
        if v != state["v"]:
            state["v"], state["since"] = v, now
            return False
        return now - state["since"] >= for_seconds

    wait_for(check, deadline, what)
    return state["v"]


# -- a slow reader and a fast provider ------------------------------------------


@pytest.fixture(scope="module")
def big_fake(ca):
    fake = HostileProvider(ca, "imap", "implicit").start()
    try:
        yield fake
    finally:
        fake.stop()


def test_slow_client_big_message_bounded_memory(workdir, ca, dovecot, postfix, big_fake):
    msg = BigMessage(BIG, seed=5)
    want = msg.sha256()
    login_name, app = "big@fake.test", "app-" + secrets.token_hex(8)
    big_fake.reset(IMAPFake({login_name: app}, messages=[msg]))
    gw = new_gateway(workdir, ca, dovecot, postfix, providers_extra=(
        "  bigprov:\n    imap: %s\n    ca_file: %s\n" % (big_fake.endpoint_yaml(), ca.ca_cert)))
    with running_gateway(gw, users=[("big", "gw-big-pass", "bigprov", login_name, app)]):
        pid = gw.proc.pid
        c = device(gw, "imap")
        try:
            assert login(c, "imap", "big", "gw-big-pass").startswith(b"a OK"), c.dump()
            _, tagged = c.command("s", "SELECT INBOX")
            assert tagged.startswith(b"s OK"), c.dump()
            base = rss_kb(pid)
            c.send(b"f FETCH 1 BODY[]\r\n")
            head = c.readline()
            assert head == b"* 1 FETCH (BODY[] {%d}\r\n" % BIG, head
            h = hashlib.sha256()
            got = 0
            peak = base
            pending = c.buf
            c.buf = b""
            t0 = time.monotonic()
            while got < BIG:
                if pending:
                    chunk, pending = pending[:BIG - got], pending[BIG - got:]
                else:
                    slow = time.monotonic() - t0 < SLOW_SECONDS
                    if slow:
                        # Throttling: a slow device, about 1.5 MB/s.
                        select.select([], [], [], 0.02)
                    chunk = c.sock.recv(32768 if slow else 1 << 20)
                    assert chunk, "closed after %d of %d bytes" % (got, BIG)
                    if got + len(chunk) > BIG:
                        chunk, pending = chunk[:BIG - got], chunk[BIG - got:]
                h.update(chunk)
                got += len(chunk)
                peak = max(peak, rss_kb(pid))
            c.buf = pending
            assert h.hexdigest() == want, "the message arrived changed"
            assert c.readline() == b")\r\n", c.dump()
            _, tagged = c.read_until_tagged("f")
            assert tagged.startswith(b"f OK"), c.dump()
            growth = peak - base
            print("rss base %d KiB peak %d KiB" % (base, peak))
            assert growth < RSS_CEILING_KB, \
                "gateway RSS grew by %d KiB (from %d KiB) while the device read slowly" % (
                    growth, base)
            assert probe(c, "imap")
        finally:
            c.close()


# -- a device that writes and never reads ------------------------------------------


PIPELINE_BYTES = 12 * 1024 * 1024
NOOPS = {"imap": b"a NOOP\r\n", "pop3": b"NOOP\r\n", "smtp": b"NOOP\r\n"}


@pytest.fixture
def pgw(workdir, ca, dovecot, postfix):
    """
    A fresh gateway for each test: memory freed by an earlier test stays in
    the gateway's heap and would be reused unseen by RSS.
    """
    gw = new_gateway(workdir, ca, dovecot, postfix)
    with running_gateway(gw, users=[(ALICE, ALICE_GW_PASSWORD, "testprov", ALICE_LOGIN,
                                     ALICE_APP_PASSWORD)]):
        yield gw


def push_without_reading(c, data, pid, deadline=20.0):
    """
    Writes data without reading a byte, until all is written, the gateway
    stops taking it for a second (its backpressure), or it closes. Returns
    (bytes written, peak RSS of the gateway in KiB).
    """
    c.sock.setblocking(False)
    sent, peak = 0, rss_kb(pid)
    t0 = last = time.monotonic()
    while sent < len(data):
        now = time.monotonic()
        if now - last > 1.0 or now - t0 > deadline:
            break
        # Waiting for the socket to take more (at most 0.1 s a turn).
        _, writable, _ = select.select([], [c.sock], [], 0.1)
        if writable:
            try:
                sent += c.sock.send(data[sent:sent + 65536])
                last = time.monotonic()
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except OSError:
                break  # closed by the gateway: fine
        peak = max(peak, rss_kb(pid))
    return sent, peak


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("tls", ["implicit", "plain"])
def test_pipelining_without_reading_before_login(pgw, proto, tls):
    pid = pgw.proc.pid
    c = device(pgw, proto, tls)
    try:
        base = rss_kb(pid)
        data = NOOPS[proto] * (PIPELINE_BYTES // len(NOOPS[proto]))
        sent, peak = push_without_reading(c, data, pid)
    finally:
        c.close()
    assert peak - base < RSS_CEILING_KB, \
        "gateway RSS grew by %d KiB while a device wrote %d bytes of %s NOOPs and read nothing" % (
            peak - base, sent, proto)
    assert_serving(pgw, proto)


@pytest.mark.parametrize("proto", PROTOS)
def test_pipelining_without_reading_after_login(pgw, proto):
    pid = pgw.proc.pid
    c = device(pgw, proto)
    try:
        assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
        base = rss_kb(pid)
        data = NOOPS[proto] * (PIPELINE_BYTES // len(NOOPS[proto]))
        sent, peak = push_without_reading(c, data, pid)
    finally:
        c.close()
    assert peak - base < RSS_CEILING_KB, \
        "gateway RSS grew by %d KiB while a device wrote %d bytes of %s NOOPs and read nothing" % (
            peak - base, sent, proto)
    assert_serving(pgw, proto)


# -- hang-ups in the middle of a transfer ----------------------------------------


def fds_settled(gw):
    return stable(lambda: fd_count(gw.proc.pid), what="the gateway's fd count to settle")


def assert_fds_back(gw, baseline):
    wait_for(lambda: fd_count(gw.proc.pid) <= baseline, 10.0,
             "the gateway's fds to return to %d (now %d)" % (baseline, fd_count(gw.proc.pid)),
             log=lambda: "fds: %s" % sorted(os.readlink("/proc/%d/fd/%s" % (gw.proc.pid, n))
                                            for n in os.listdir("/proc/%d/fd" % gw.proc.pid)))


def assert_serving(gw, proto):
    c = device(gw, proto)
    try:
        assert login(c, proto, ALICE, ALICE_GW_PASSWORD)[:3] in (b"a O", b"+OK", b"235"), c.dump()
        assert probe(c, proto)
    finally:
        c.close()


def warm_up(gw):
    for proto in ("imap", "smtp"):
        assert_serving(gw, proto)


def test_hangup_mid_append_literal(gateway):
    warm_up(gateway)
    baseline = fds_settled(gateway)
    for _ in range(3):
        c = device(gateway, "imap")
        try:
            assert login(c, "imap", ALICE, ALICE_GW_PASSWORD).startswith(b"a OK"), c.dump()
            size = 20 * 1024 * 1024
            c.send(b"a APPEND INBOX {%d}\r\n" % size)
            assert c.readline().startswith(b"+"), c.dump()
            block = b"X" * 76 + b"\r\n"
            sent = 0
            while sent < size // 2:
                c.sock.sendall(block * 1000)
                sent += len(block) * 1000
        finally:
            c.close()
    assert_fds_back(gateway, baseline)
    assert_serving(gateway, "imap")


def test_hangup_mid_prelogin_literal(gateway):
    warm_up(gateway)
    baseline = fds_settled(gateway)
    for _ in range(3):
        c = device(gateway, "imap")
        try:
            c.send(b"a LOGIN {200}\r\n")
            assert c.readline().startswith(b"+"), c.dump()
            c.send(b"x" * 100)
        finally:
            c.close()
    assert_fds_back(gateway, baseline)
    assert_serving(gateway, "imap")


def test_hangup_mid_data(gateway):
    warm_up(gateway)
    baseline = fds_settled(gateway)
    for _ in range(3):
        c = device(gateway, "smtp")
        try:
            assert login(c, "smtp", ALICE, ALICE_GW_PASSWORD).startswith(b"235"), c.dump()
            assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
            assert c.command("RCPT TO:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
            assert c.command("DATA")[0] == 354, c.dump()
            c.sock.sendall(b"Subject: cut short\r\n\r\n" + (b"Y" * 76 + b"\r\n") * 50000)
        finally:
            c.close()
    assert_fds_back(gateway, baseline)
    assert_serving(gateway, "smtp")
