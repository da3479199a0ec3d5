"""
SMTP submission through the gateway (RFC 5321, 6409, 4954 AUTH, 3207
STARTTLS, 8314 implicit TLS): the gateway's own EHLO before AUTH, STARTTLS
rules, AUTH PLAIN and LOGIN in every form, the codes of refused logins (535
5.7.8 for the device's fault, 454 4.7.0 for an upstream one), and after 235
the provider's session relayed: MAIL/RCPT/DATA/BDAT answered by Postfix,
including its refusal of a sender that is not the login.
"""

import base64
import re
import secrets
import smtplib
import ssl

import pytest

from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN, make_message, plain_ir

SUBMISSION_EXTS = {"AUTH", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE"}
UPSTREAM_FAULT = re.compile(r"^4\.7\.0 \S")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def auth_mechs(lines):
    for line in lines[1:]:
        words = line.upper().split()
        if words and words[0] == "AUTH":
            return set(words[1:])
    return set()


def fresh_message(tag, login):
    t = "%s-%s" % (tag, secrets.token_hex(4))
    msg = make_message(t).replace(b"From: Sender <sender@example.test>",
                                  b"From: <%s>" % login.encode())
    return msg, "<%s.0@example.test>" % t.replace("-", "")


def assert_upstream_fault(code, lines, user):
    text = " ".join(lines)
    assert code == 454 and UPSTREAM_FAULT.match(text), (code, lines)
    assert len(text) <= 200, text
    assert user.app_password not in text and user.password not in text
    return text


# -- the gateway's own EHLO ---------------------------------------------------


def test_greeting_and_ehlo_implicit_tls(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        assert c.greeting[0] == 220, c.dump()
        code, exts, lines = c.ehlo()
        assert code == 250, c.dump()
        assert SUBMISSION_EXTS <= exts, exts
        assert "STARTTLS" not in exts, exts
        assert {"PLAIN", "LOGIN"} <= auth_mechs(lines), lines
        size = [l for l in lines if l.upper().startswith("SIZE")][0].split()
        assert len(size) == 1 or int(size[1]) >= 20 * 1024 * 1024, size
        assert c.command("QUIT")[0] == 221, c.dump()
    finally:
        c.close()


def test_ehlo_before_and_after_starttls(gateway):
    c = gateway.raw_smtp("plain")
    try:
        assert c.greeting[0] == 220, c.dump()
        code, exts, lines = c.ehlo()
        assert code == 250, c.dump()
        assert "STARTTLS" in exts, exts
        assert "AUTH" not in exts, exts
        c.starttls()
        code, exts, lines = c.ehlo()
        assert code == 250, c.dump()
        assert SUBMISSION_EXTS <= exts, exts
        assert "STARTTLS" not in exts, exts
        assert {"PLAIN", "LOGIN"} <= auth_mechs(lines), lines
    finally:
        c.close()


@pytest.mark.parametrize("command", [
    "AUTH PLAIN %s" % plain_ir(ALICE, ALICE_GW_PASSWORD),
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH LOGIN %s" % b64(ALICE),
])
def test_auth_refused_before_starttls(gateway, command):
    c = gateway.raw_smtp("plain")
    try:
        c.ehlo()
        code, lines = c.command(command)
        # 530 5.7.0 (must issue STARTTLS first) or 538 5.7.11 (encryption
        # required): a permanent refusal, never a 334 challenge.
        assert 500 <= code < 600, c.dump()
        code, lines = c.command("MAIL FROM:<%s>" % ALICE_LOGIN)
        assert code == 530, c.dump()
        # STARTTLS still possible, and AUTH after it.
        c.starttls()
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


def test_mail_before_auth(gateway):
    for tls in ("implicit", "starttls"):
        c = gateway.raw_smtp(tls)
        try:
            c.ehlo()
            code, lines = c.command("MAIL FROM:<%s>" % ALICE_LOGIN)
            assert code == 530 and lines[0].startswith("5.7.0"), c.dump()
            code, lines = c.command("RCPT TO:<%s>" % ALICE_LOGIN)
            assert 500 <= code < 600, c.dump()
            code, lines = c.command("DATA")
            assert 500 <= code < 600, c.dump()
        finally:
            c.close()


def test_quit_noop_rset_before_auth(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        # HELO (RFC 5321 4.1.1.1) is answered too; EHLO after it as well.
        assert c.command("HELO device.test")[0] == 250, c.dump()
        c.ehlo()
        assert c.command("NOOP")[0] == 250, c.dump()
        assert c.command("RSET")[0] == 250, c.dump()
        assert c.command("QUIT")[0] == 221, c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_starttls_refused_when_tls_active(gateway, tls):
    c = gateway.raw_smtp(tls)
    try:
        c.ehlo()
        code, _ = c.command("STARTTLS")
        assert 500 <= code < 600, c.dump()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


# -- STARTTLS and pipelining ----------------------------------------------------


def test_pipelined_after_starttls_not_executed(gateway):
    c = gateway.raw_smtp("plain")
    try:
        c.ehlo()
        c.send(b"STARTTLS\r\nEHLO injected.test\r\nAUTH PLAIN %s\r\n"
               % plain_ir(ALICE, ALICE_GW_PASSWORD).encode())
        code, lines = c.reply(unbuffered=True)
        assert code == 220, c.dump()
        try:
            c.tls_handshake()
        except (ssl.SSLError, OSError) as e:
            pytest.fail("TLS handshake after STARTTLS failed (%s): did the gateway answer the "
                        "pipelined commands in plaintext?\n%s" % (e, c.dump()))
        # Had EHLO and AUTH been executed after the handshake, a 250-
        # list and a 235 would come first.
        code, lines = c.command("NOOP")
        assert code == 250 and len(lines) == 1, "pipelined commands were executed:\n%s" % c.dump()
        c.ehlo()
        code, lines = c.command("MAIL FROM:<%s>" % ALICE_LOGIN)
        assert code == 530, "not authenticated, yet MAIL was accepted:\n%s" % c.dump()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


# -- AUTH -------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_auth_plain_initial_response(gateway, tls):
    c = gateway.raw_smtp(tls)
    try:
        c.ehlo()
        code, lines = c.auth_plain(ALICE, ALICE_GW_PASSWORD)
        assert code == 235, c.dump()
        # Now the provider's session: MAIL FROM the login is accepted.
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
        assert c.command("RSET")[0] == 250, c.dump()
        assert c.command("QUIT")[0] == 221, c.dump()
    finally:
        c.close()


def test_auth_plain_continuation(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        code, lines = c.command("AUTH PLAIN")
        assert code == 334 and lines == [""], c.dump()
        code, lines = c.command(plain_ir(ALICE, ALICE_GW_PASSWORD))
        assert code == 235, c.dump()
    finally:
        c.close()


def test_auth_login_continuation(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        code, lines = c.command("AUTH LOGIN")
        assert (code, lines) == (334, ["VXNlcm5hbWU6"]), c.dump()
        code, lines = c.command(b64(ALICE))
        assert (code, lines) == (334, ["UGFzc3dvcmQ6"]), c.dump()
        code, lines = c.command(b64(ALICE_GW_PASSWORD))
        assert code == 235, c.dump()
    finally:
        c.close()


def test_auth_login_initial_response(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        code, lines = c.command("AUTH LOGIN " + b64(ALICE))
        assert (code, lines) == (334, ["UGFzc3dvcmQ6"]), c.dump()
        code, lines = c.command(b64(ALICE_GW_PASSWORD))
        assert code == 235, c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "LOGIN-password", "LOGIN-ir"])
def test_auth_cancelled(gateway, mech):
    # "*" at any 334 challenge cancels the exchange (RFC 4954 4): 501, and
    # the next line is a command again.
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        if mech == "LOGIN-ir":
            assert c.command("AUTH LOGIN " + b64(ALICE))[0] == 334, c.dump()
        else:
            assert c.command("AUTH " + mech.split("-")[0])[0] == 334, c.dump()
        if mech == "LOGIN-password":
            assert c.command(b64(ALICE))[0] == 334, c.dump()
        code, lines = c.command("*")
        assert code == 501, c.dump()
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 530, c.dump()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_bad_base64(gateway, mech):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.command("AUTH " + mech)[0] == 334, c.dump()
        code, lines = c.command("not*base64!")
        assert code == 501, c.dump()
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 530, c.dump()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


def test_auth_unknown_mechanism(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        code, _ = c.command("AUTH CRAM-MD5")
        assert code == 504 or 500 <= code < 600, c.dump()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
    finally:
        c.close()


@pytest.mark.parametrize("how", ["plain", "login"])
def test_wrong_password_and_unknown_user(gateway, how):
    for user, password in ((ALICE, "not-" + ALICE_GW_PASSWORD), ("nosuchuser", "whatever")):
        c = gateway.raw_smtp("implicit")
        try:
            c.ehlo()
            if how == "plain":
                code, lines = c.auth_plain(user, password)
            else:
                assert c.command("AUTH LOGIN " + b64(user))[0] == 334, c.dump()
                code, lines = c.command(b64(password))
            assert code == 535 and lines[0].startswith("5.7.8"), c.dump()
            assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 530, c.dump()
        finally:
            c.close()


def test_smtplib_wrong_password(gateway):
    s = gateway.smtp_ssl()
    try:
        s.ehlo("device.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "not-" + ALICE_GW_PASSWORD)
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8"), e.value
    finally:
        s.close()


# -- upstream faults: 454 4.7.0, never 535 --------------------------------------


def auth_reply(gateway, u, tls="implicit", how="plain"):
    c = gateway.raw_smtp(tls)
    try:
        c.ehlo()
        if how == "plain":
            return c.auth_plain(u.name, u.password)
        assert c.command("AUTH LOGIN " + b64(u.name))[0] == 334, c.dump()
        return c.command(b64(u.password))
    finally:
        c.close()


@pytest.mark.parametrize("how", ["plain", "login"])
def test_user_without_account(gateway, make_user, how):
    u = make_user(upstream=False, with_account=False)
    assert_upstream_fault(*auth_reply(gateway, u, how=how), u)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_provider_down(gateway, make_user, tls):
    u = make_user(provider="down", upstream=False)
    assert_upstream_fault(*auth_reply(gateway, u, tls=tls), u)


def test_provider_certificate_not_trusted(gateway, postfix, make_user):
    u = make_user(provider="untrusted")
    off = postfix.log_offset()
    assert_upstream_fault(*auth_reply(gateway, u), u)
    # Postfix saw the gateway's connection and no AUTH from it.
    postfix.wait_log(r"smtps/smtpd\[\d+\]: disconnect from localhost\[127\.0\.0\.1\] "
                     r"commands=0/0", off)
    assert u.login not in postfix.log_since(off)


def test_stale_app_password(gateway, dovecot, postfix, make_user):
    u = make_user()
    assert auth_reply(gateway, u)[0] == 235
    dovecot.set_password(u.login, "rotated-" + u.app_password)
    off = postfix.log_offset()
    code, lines = auth_reply(gateway, u, tls="starttls", how="login")
    assert code != 535, lines
    assert_upstream_fault(code, lines, u)
    # It was the provider that refused the stale app password.
    postfix.wait_log(r"localhost\[127\.0\.0\.1\]: SASL \S+ authentication failed.*"
                     r"sasl_username=%s" % re.escape(u.login), off)


def test_session_usable_after_upstream_fault(gateway, make_user):
    u = make_user(provider="down", upstream=False)
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert_upstream_fault(*c.auth_plain(u.name, u.password), u)
        assert c.command("MAIL FROM:<%s>" % u.login)[0] == 530, c.dump()
        assert c.command("QUIT")[0] == 221, c.dump()
    finally:
        c.close()


# -- after AUTH: the provider's session, relayed --------------------------------


def test_ehlo_again_after_auth(gateway, dovecot):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
        code, exts, lines = c.ehlo("again.test")
        assert code == 250, c.dump()
        msg, msgid = fresh_message("ehlo-again", ALICE_LOGIN)
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
        assert c.command("RCPT TO:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
        assert c.command("DATA")[0] == 354, c.dump()
        code, lines = c.command(msg + b".")
        assert code == 250, c.dump()
        assert c.command("QUIT")[0] == 221, c.dump()
    finally:
        c.close()
    _, delivered = dovecot.wait_message(ALICE_LOGIN, msgid)
    assert delivered.endswith(msg)


@pytest.mark.parametrize("provider,service", [("testprov", "smtps"),
                                              ("testprov-starttls", "submission")])
def test_upstream_tls_modes(gateway, dovecot, postfix, make_user, provider, service):
    # testprov: Postfix's implicit-TLS port; testprov-starttls: its 587-style
    # port, where AUTH is refused until STARTTLS. Either way the gateway
    # logs in with the app password and the message arrives.
    u = make_user(provider=provider)
    msg, msgid = fresh_message("up-" + service, u.login)
    off = postfix.log_offset()
    s = gateway.smtp_starttls()
    try:
        s.login(u.name, u.password)
        assert s.sendmail(u.login, [u.login], msg) == {}
    finally:
        s.quit()
    _, delivered = dovecot.wait_message(u.login, msgid)
    assert delivered.endswith(msg)
    postfix.wait_log(r"postfix/%s/smtpd\[\d+\]: [0-9A-F]+: client=localhost\[127\.0\.0\.1\], "
                     r"sasl_method=\S+, sasl_username=%s\n" % (service, re.escape(u.login)), off)


def test_second_auth_answered_by_provider(gateway):
    # After 235 the gateway interprets nothing: a second AUTH is Postfix's
    # to refuse (503 5.5.1 "already authenticated").
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
        code, lines = c.auth_plain(ALICE, ALICE_GW_PASSWORD)
        assert code == 503 and "already authenticated" in lines[0], c.dump()
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
    finally:
        c.close()


def test_sender_mismatch_rejected_by_provider(gateway):
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
        code, lines = c.command("MAIL FROM:<bob@example.test>")
        # Postfix's own words, relayed.
        assert code == 553, c.dump()
        assert lines[0].startswith("5.7.1") and "not owned by user %s" % ALICE_LOGIN in lines[0], lines
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
    finally:
        c.close()


def test_smtplib_sender_mismatch(gateway):
    s = gateway.smtp_ssl()
    try:
        s.login(ALICE, ALICE_GW_PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("bob@example.test", [ALICE_LOGIN], make_message("mismatch"))
        assert e.value.smtp_code == 553
    finally:
        s.close()


def test_pipelined_transaction(gateway, dovecot):
    # RFC 2920: MAIL, RCPT and DATA in one write after AUTH; replies in order.
    msg, msgid = fresh_message("pipelined", ALICE_LOGIN)
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (ALICE_LOGIN.encode(),
                                                               ALICE_LOGIN.encode()))
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354], c.dump()
        code, lines = c.command(msg + b".")
        assert code == 250, c.dump()
    finally:
        c.close()
    _, delivered = dovecot.wait_message(ALICE_LOGIN, msgid)
    assert delivered.endswith(msg)


def test_bdat_relayed(gateway, dovecot):
    # CHUNKING is the provider's extension: after AUTH, BDAT goes through.
    msg, msgid = fresh_message("bdat", ALICE_LOGIN)
    half = len(msg) // 2
    c = gateway.raw_smtp("implicit")
    try:
        c.ehlo()
        assert c.auth_plain(ALICE, ALICE_GW_PASSWORD)[0] == 235, c.dump()
        code, exts, _ = c.ehlo("again.test")
        assert "CHUNKING" in exts, c.dump()
        assert c.command("MAIL FROM:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
        assert c.command("RCPT TO:<%s>" % ALICE_LOGIN)[0] == 250, c.dump()
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        assert c.reply()[0] == 250, c.dump()
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        assert c.reply()[0] == 250, c.dump()
    finally:
        c.close()
    _, delivered = dovecot.wait_message(ALICE_LOGIN, msgid)
    assert delivered.endswith(msg)
