"""
The provider's submission server behaves like a real one, without mailgate
in the picture: implicit TLS ("465") and STARTTLS before AUTH ("587") with
the test CA, the app password shared with IMAP/POP3 (SASL through Dovecot),
MAIL FROM bound to the login, delivery into the Maildirs Dovecot serves,
SMTPUTF8 and large messages, and no relaying anywhere else.
"""

import secrets
import smtplib

import pytest

from harness import (ALICE_APP_PASSWORD, ALICE_LOGIN, GATEWAY_ADDR, IO_TIMEOUT, UTF8_ADDR,
                     UTF8_LOGIN, logout, make_message)


def fresh_message(tag, **kw):
    msgid_tag = "%s-%s" % (tag, secrets.token_hex(4))
    msg = make_message(msgid_tag, **kw)
    return msg, "<%s.0@example.test>" % msgid_tag.replace("-", "")


def assert_delivered_intact(delivered, msg):
    """What Dovecot serves is the message as sent, under the trace headers
    Postfix and the delivery agent put on top."""
    assert delivered.endswith(msg), delivered[:600]
    added = delivered[:-len(msg)]
    assert added.endswith(b"\r\n") and b"\r\n\r\n" not in added, added
    assert b"Received: from " in added and b"by provider.test (Postfix)" in added, added


def test_implicit_tls_auth_send_and_read_back(postfix, dovecot):
    msg, msgid = fresh_message("pf465")
    s = postfix.smtp()
    try:
        assert "PLAIN" in s.esmtp_features["auth"].upper().split()
        s.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        assert s.sendmail(ALICE_LOGIN, [ALICE_LOGIN], msg) == {}
    finally:
        s.quit()
    _, delivered = dovecot.wait_message(ALICE_LOGIN, msgid)
    assert_delivered_intact(delivered, msg)


def test_starttls_required_before_auth(postfix, dovecot):
    # From the gateway's own address: the provider does not trust it.
    s = smtplib.SMTP(postfix.addr, postfix.submission_port, timeout=IO_TIMEOUT,
                     source_address=(GATEWAY_ADDR, 0))
    try:
        s.ehlo("gateway.test")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), s.esmtp_features
        code, text = s.docmd("AUTH", "PLAIN")
        assert (code, text[:5]) == (530, b"5.7.0"), (code, text)
        code, text = s.docmd("MAIL", "FROM:<%s>" % ALICE_LOGIN)
        assert code == 530, (code, text)
        s.starttls(context=postfix.ca.context())
        s.ehlo("gateway.test")
        assert set(s.esmtp_features["auth"].upper().split()) >= {"PLAIN", "LOGIN"}
        for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "size"):
            assert s.has_extn(ext), (ext, s.esmtp_features)
        assert int(s.esmtp_features["size"]) >= 60 * 1024 * 1024
        s.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        msg, msgid = fresh_message("pf587")
        assert s.sendmail(ALICE_LOGIN, [ALICE_LOGIN], msg) == {}
    finally:
        s.quit()
    _, delivered = dovecot.wait_message(ALICE_LOGIN, msgid)
    assert_delivered_intact(delivered, msg)


def test_wrong_app_password(postfix):
    s = postfix.smtp()
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE_LOGIN, "not-" + ALICE_APP_PASSWORD)
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8"), e.value
    finally:
        s.close()


def test_mail_before_auth_refused(postfix):
    s = postfix.smtp()
    try:
        code, text = s.docmd("MAIL", "FROM:<%s>" % ALICE_LOGIN)
        assert 500 <= code < 600, (code, text)
    finally:
        s.close()


def test_sender_must_be_the_login(postfix):
    s = postfix.smtp()
    try:
        s.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        code, text = s.docmd("MAIL", "FROM:<bob@example.test>")
        assert code == 553 and b"not owned by user %s" % ALICE_LOGIN.encode() in text, text
        code, text = s.docmd("MAIL", "FROM:<%s>" % ALICE_LOGIN)
        assert code == 250, text
    finally:
        s.close()


def test_no_relay_elsewhere(postfix):
    # Nothing leaves: a recipient outside example.test is refused at once,
    # without a DNS lookup or a queued message.
    s = postfix.smtp()
    try:
        s.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        assert s.docmd("MAIL", "FROM:<%s>" % ALICE_LOGIN)[0] == 250
        code, text = s.docmd("RCPT", "TO:<someone@elsewhere.test>")
        assert code == 550 and b"relays nothing" in text, text
    finally:
        s.close()


def test_new_user_shares_the_imap_password(postfix, dovecot):
    # The SMTP app password is the passwd-file password, so that a rotation
    # at the provider (test_rotation.py) changes it for SMTP as for IMAP
    # and POP3; a user added at run time can submit at once.
    user = "pfnew-%s@example.test" % secrets.token_hex(3)
    dovecot.add_user(user, "its-pass")
    s = postfix.smtp()
    try:
        s.login(user, "its-pass")
    finally:
        s.close()
    logout(dovecot.login(user))


def test_smtputf8_alias_and_8bit_body(postfix, dovecot):
    tag = secrets.token_hex(4)
    msgid = "<utf8-%s@example.test>" % tag
    msg = ("From: Alice <%s>\r\nTo: Jörg <%s>\r\nSubject: Grüße %s\r\nMessage-ID: %s\r\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, 日本語.\r\n"
           % (ALICE_LOGIN, UTF8_ADDR, tag, msgid)).encode()
    s = postfix.smtp()
    try:
        assert s.has_extn("smtputf8")
        s.login(ALICE_LOGIN, ALICE_APP_PASSWORD)
        assert s.sendmail(ALICE_LOGIN, [UTF8_ADDR], msg,
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    finally:
        s.quit()
    _, delivered = dovecot.wait_message(UTF8_LOGIN, msgid)
    assert delivered.endswith(msg), delivered[:600]
    postfix.wait_log(r"to=<%s>, orig_to=<%s>.*status=sent" % (UTF8_LOGIN, UTF8_ADDR))
