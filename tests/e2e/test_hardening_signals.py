"""
Signals (issue 5). SIGTERM: the listeners close at once (a new connection
is refused by the kernel), live sessions may finish within
timeouts.shutdown_grace, and the gateway exits 0 when the last one ends or
when the grace period is over, closing what is left. SIGHUP: the
certificate and key are read again; new connections get the new
certificate, live sessions go on.
"""

import copy
import os
import shutil
import signal
import ssl
import time

import pytest

from harness import (ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, port_accepts,
                     wait_for)
from hostile import (LOGIN_OK, PROTOS, device, login, make_leaf, new_gateway, probe,
                     running_gateway, wait_closed)

ALICE_USERS = [(ALICE, ALICE_GW_PASSWORD, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)]
GRACE = 3


def logged_in(gw, proto):
    c = device(gw, proto)
    assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
    return c


def logout(c, proto):
    if proto == "imap":
        _, tagged = c.command("z", "LOGOUT")
        assert tagged.startswith(b"z OK"), c.dump()
    elif proto == "pop3":
        # QUIT would also commit POP3 deletions: there are none.
        assert c.command("QUIT").startswith(b"+OK"), c.dump()
    else:
        assert c.command("QUIT")[0] == 221, c.dump()
    wait_closed(c)
    c.close()


def listeners_closed(gw):
    return not any(port_accepts(gw.addr, p) for p in gw.ports())


@pytest.mark.parametrize("proto", PROTOS)
def test_sigterm_lets_live_session_finish(workdir, ca, dovecot, postfix, proto):
    gw = new_gateway(workdir, ca, dovecot, postfix,
                     timeouts={"shutdown_grace": "%ds" % (GRACE * 3)})
    with running_gateway(gw, users=ALICE_USERS):
        live = logged_in(gw, proto)
        try:
            t0 = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: listeners_closed(gw), 3.0, "the listeners to close after SIGTERM",
                     log=gw.log_text)
            assert gw.proc.poll() is None, "the gateway exited with a live session"
            # The live session still works, upstream included ...
            assert probe(live, proto), live.dump()
            assert probe(live, proto), live.dump()
            # ... and when it ends, the gateway exits, well before the grace period.
            logout(live, proto)
            gw.proc.wait(timeout=GRACE * 3)
            took = time.monotonic() - t0
            assert gw.proc.returncode == 0, gw.log_text()[-2000:]
            assert took < GRACE * 3 - 1, took
        finally:
            live.close()


def test_sigterm_grace_period_ends_sessions(workdir, ca, dovecot, postfix):
    gw = new_gateway(workdir, ca, dovecot, postfix, timeouts={"shutdown_grace": "%ds" % GRACE})
    with running_gateway(gw, users=ALICE_USERS):
        leaving = logged_in(gw, "imap")
        staying = [logged_in(gw, p) for p in PROTOS]
        try:
            t0 = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: listeners_closed(gw), 3.0, "the listeners to close after SIGTERM",
                     log=gw.log_text)
            logout(leaving, "imap")
            for c, p in zip(staying, PROTOS):
                assert probe(c, p), c.dump()
            for c in staying:
                wait_closed(c, deadline=GRACE + 5)
            closed = time.monotonic() - t0
            gw.proc.wait(timeout=5)
            assert gw.proc.returncode == 0, gw.log_text()[-2000:]
            assert GRACE - 0.5 <= closed <= GRACE + 3, closed
        finally:
            for c in staying:
                c.close()


def test_sigterm_without_sessions_exits_at_once(workdir, ca, dovecot, postfix):
    gw = new_gateway(workdir, ca, dovecot, postfix, timeouts={"shutdown_grace": "30s"})
    with running_gateway(gw, users=ALICE_USERS):
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(timeout=5)
        assert gw.proc.returncode == 0
        assert time.monotonic() - t0 < 2


# -- SIGHUP ------------------------------------------------------------------------


def peer_cert(gw, port):
    """The DER certificate a new implicit-TLS connection is shown."""
    import socket
    with socket.create_connection((gw.addr, port), timeout=10) as s:
        with gw.ca.context().wrap_socket(s, server_hostname=gw.addr) as t:
            return t.getpeercert(binary_form=True)


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def replace_files(pairs):
    for src, dst in pairs:
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)


@pytest.fixture
def hup_gateway(workdir, ca, dovecot, postfix):
    """A gateway whose certificate and key are its own files (gw.ca.gateway_cert/key)."""
    gw = new_gateway(workdir, ca, dovecot, postfix)
    own = copy.copy(ca)
    own.gateway_cert = os.path.join(gw.dir, "tls.crt")
    own.gateway_key = os.path.join(gw.dir, "tls.key")
    replace_files([(ca.gateway_cert, own.gateway_cert), (ca.gateway_key, own.gateway_key)])
    gw.ca = own
    with running_gateway(gw, users=ALICE_USERS):
        yield gw


def test_sighup_reloads_certificate(hup_gateway, ca):
    gw = hup_gateway
    old = der(gw.ca.gateway_cert)
    assert peer_cert(gw, gw.imaps_port) == old
    live = {p: logged_in(gw, p) for p in PROTOS}
    try:
        cert, key = make_leaf(ca, "mailgate-reload-%d" % os.getpid(), "localhost",
                              "DNS:localhost,IP:127.0.0.1")
        new = der(cert)
        assert new != old
        replace_files([(cert, gw.ca.gateway_cert), (key, gw.ca.gateway_key)])
        off = len(gw.log_text())
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls reloaded" in gw.log_text()[off:], 5.0, "the log line 'tls reloaded'",
                 proc=gw.proc, log=gw.log_text)
        for port in (gw.imaps_port, gw.pop3s_port, gw.smtps_port):
            assert peer_cert(gw, port) == new, "port %d still shows the old certificate" % port
        # The STARTTLS listeners too.
        c = device(gw, "imap", "starttls")
        try:
            assert c.sock.getpeercert(binary_form=True) == new
        finally:
            c.close()
        # Sessions from before the reload go on, on the old certificate.
        for p, c in live.items():
            assert c.sock.getpeercert(binary_form=True) == old
            assert probe(c, p), c.dump()
        # And logins keep working.
        c = logged_in(gw, "imap")
        c.close()
    finally:
        for c in live.values():
            c.close()


def test_sighup_with_broken_files_keeps_serving(hup_gateway):
    gw = hup_gateway
    old = der(gw.ca.gateway_cert)
    with open(gw.ca.gateway_cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    off = len(gw.log_text())
    gw.proc.send_signal(signal.SIGHUP)
    # The gateway says it could not reload, and goes on with what it had.
    wait_for(lambda: "tls reload" in gw.log_text()[off:], 5.0, "a log line about the reload",
             proc=gw.proc, log=gw.log_text)
    assert "tls reloaded" not in gw.log_text()[off:], gw.log_text()[off:]
    assert gw.proc.poll() is None
    assert peer_cert(gw, gw.imaps_port) == old
    c = logged_in(gw, "imap")
    c.close()
