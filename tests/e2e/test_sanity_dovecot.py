"""
The provider behaves like a real one, without mailgate in the picture: TLS
with the test CA, no plaintext logins from another address, delivery and
fetch, password rotation through the passwd-file.
"""

import imaplib
import poplib
import re
import secrets
import socket
import ssl

import pytest

from harness import ALICE_LOGIN, ALICE_APP_PASSWORD
from harness import GATEWAY_ADDR, IO_TIMEOUT, SourceIMAP4, client_context, logout, make_message


def test_direct_imaps_login_from_gateway_address(dovecot):
    # The gateway's address (127.0.0.1) to the provider's (127.0.0.2), over TLS.
    m = dovecot.connect(source=GATEWAY_ADDR)
    try:
        typ, data = m.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        assert typ == "OK"
        typ, _ = m.select("INBOX")
        assert typ == "OK"
    finally:
        logout(m)


def test_plaintext_login_refused_from_gateway_address(dovecot):
    m = SourceIMAP4(dovecot.addr, dovecot.imap_port, timeout=IO_TIMEOUT, source=GATEWAY_ADDR)
    try:
        assert "LOGINDISABLED" in m.capabilities
        assert "STARTTLS" in m.capabilities
        assert not any(c.startswith("AUTH=") for c in m.capabilities)
        with pytest.raises(imaplib.IMAP4.error):
            m.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
    finally:
        m.shutdown()


def test_starttls_then_login(dovecot):
    m = dovecot.connect(starttls=True, source=GATEWAY_ADDR)
    try:
        assert "LOGINDISABLED" not in m.capabilities
        typ, _ = m.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        assert typ == "OK"
    finally:
        logout(m)


def test_certificate_names(dovecot, ca):
    # The provider's certificate is valid for 127.0.0.2 and provider.test,
    # and not for a name it does not carry.
    for name in ("127.0.0.2", "provider.test", "localhost"):
        with socket.create_connection((dovecot.addr, dovecot.imaps_port), timeout=IO_TIMEOUT) as s:
            with ca.context().wrap_socket(s, server_hostname=name) as t:
                assert t.recv(4) == b"* OK"
    with socket.create_connection((dovecot.addr, dovecot.imaps_port), timeout=IO_TIMEOUT) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ca.context().wrap_socket(s, server_hostname="other.test")
    with socket.create_connection((dovecot.addr, dovecot.imaps_port), timeout=IO_TIMEOUT) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_context(ca.other_ca_cert).wrap_socket(s, server_hostname="127.0.0.2")


def test_append_and_fetch(dovecot):
    msg = make_message("sanity %s" % secrets.token_hex(4))
    uid = dovecot.append(ALICE_LOGIN, "Sanity", msg)
    assert dovecot.fetch(ALICE_LOGIN, "Sanity", uid) == msg


def test_password_rotation(dovecot):
    user = "sanity-%s@example.test" % secrets.token_hex(3)
    dovecot.add_user(user, "first-pass")
    m = dovecot.login(user)
    logout(m)
    dovecot.set_password(user, "second-pass")
    m = dovecot.connect()
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(user, "first-pass")
    finally:
        m.shutdown()
    m = dovecot.login(user)
    logout(m)
    # A second rotation right away: the mtime still moves forward.
    dovecot.set_password(user, "third-pass")
    logout(dovecot.login(user))


def test_log_records_logins(dovecot):
    off = dovecot.log_offset()
    logout(dovecot.login(ALICE_LOGIN))
    dovecot.wait_log(r"Login: user=<%s>" % re.escape(ALICE_LOGIN), off)


def test_pop3_listeners(dovecot, ca):
    # Ready for the POP3 tests: pop3s and pop3 + STLS, plaintext refused.
    p = poplib.POP3_SSL(dovecot.addr, dovecot.pop3s_port, context=ca.context(), timeout=IO_TIMEOUT)
    try:
        p.user(ALICE_LOGIN)
        p.pass_(ALICE_APP_PASSWORD)
        count, _ = p.stat()
        assert count >= 0
    finally:
        p.quit()
    p = poplib.POP3(dovecot.addr, dovecot.pop3_port, timeout=IO_TIMEOUT)
    try:
        with pytest.raises(poplib.error_proto):
            p.user(ALICE_LOGIN)
            p.pass_(ALICE_APP_PASSWORD)
        p.stls(context=ca.context())
        p.user(ALICE_LOGIN)
        p.pass_(ALICE_APP_PASSWORD)
    finally:
        p.quit()
