"""
The admin CLI against a running gateway's config: listings show names and
logins, never a password; bad requests exit non-zero.
"""

from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN, ALICE_APP_PASSWORD


def out(p):
    return (p.stdout + p.stderr).decode("utf-8", "replace")


def test_user_list(gateway, make_user):
    u = make_user()
    text = out(gateway.cli("user", "list"))
    assert ALICE in text and u.name in text, text
    assert ALICE_GW_PASSWORD not in text and u.password not in text, text


def test_account_list(gateway, make_user):
    u = make_user(provider="testprov-starttls")
    text = out(gateway.cli("account", "list"))
    assert ALICE_LOGIN in text and "testprov" in text, text
    assert u.login in text and "testprov-starttls" in text, text
    assert ALICE_APP_PASSWORD not in text and u.app_password not in text, text
    text = out(gateway.cli("account", "list", u.name))
    assert u.login in text, text
    assert ALICE_LOGIN not in text, text


def test_account_for_unknown_provider_refused(gateway, make_user):
    u = make_user(upstream=False, with_account=False)
    p = gateway.cli("account", "set", u.name, "nosuchprovider", "--login", "x@example.test",
                    "--password-stdin", input="pw\n", check=False)
    assert p.returncode != 0, out(p)


def test_account_for_unknown_user_refused(gateway):
    p = gateway.cli("account", "set", "nosuchuser", "testprov", "--login", "x@example.test",
                    "--password-stdin", input="pw\n", check=False)
    assert p.returncode != 0, out(p)


def test_duplicate_user_refused(gateway):
    p = gateway.cli("user", "add", ALICE, "--password-stdin", input="other\n", check=False)
    assert p.returncode != 0, out(p)
    # And alice's password did not change.
    m = gateway.imap_ssl()
    try:
        typ, _ = m.login(ALICE, ALICE_GW_PASSWORD)
        assert typ == "OK"
    finally:
        m.logout()


def test_store_holds_no_plaintext_app_password(gateway, make_user):
    u = make_user()
    db = gateway.dir + "/store.db"
    with open(db, "rb") as f:
        data = f.read()
    for side in ("-wal", "-journal"):
        try:
            with open(db + side, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    assert u.app_password.encode() not in data
    assert u.password.encode() not in data


def _pty_run(argv, answers, deadline=20.0):
    """
    Runs argv on a new pseudo-terminal (its controlling terminal, as a person
    at a shell has) and answers each prompt in `answers` (prompt, reply) in
    turn. Returns (exit status, everything the terminal showed).
    """
    import os, pty, select, time
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    shown = b""
    end = time.monotonic() + deadline
    pending = list(answers)
    try:
        while True:
            if pending and pending[0][0] in shown:
                prompt, reply = pending.pop(0)
                # Answer after this prompt only once: cut what was shown so far.
                os.write(fd, reply)
                shown += b"<<answered %s>>" % prompt
            left = end - time.monotonic()
            assert left > 0, "no prompt in time; terminal showed %r" % shown
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break		# the child closed the terminal: it has exited
            if not chunk:
                break
            shown += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown


def test_password_prompt_on_terminal_does_not_echo(gateway):
    pw = b"typed-on-a-tty-7Qx"
    argv = [gateway.bin, "user", "add", "ttyuser", "-c", gateway.conf]
    code, shown = _pty_run(argv, [(b"New gateway password: ", pw + b"\n"),
                                  (b"Again: ", pw + b"\n")])
    assert code == 0, shown
    # The terminal showed the prompts, never the password.
    assert b"New gateway password: " in shown and b"Again: " in shown, shown
    assert pw not in shown.replace(b"<<answered", b""), shown
    # The password typed is the one stored: a login with it reaches the
    # account check (no account yet: UNAVAILABLE, not AUTHENTICATIONFAILED).
    c = gateway.raw("implicit")
    try:
        _, tagged = c.command("a", "LOGIN ttyuser " + pw.decode())
        assert b"[UNAVAILABLE]" in tagged, tagged
        _, tagged = c.command("b", "LOGIN ttyuser wrong-password")
        assert b"[AUTHENTICATIONFAILED]" in tagged, tagged
    finally:
        c.close()


def test_password_prompts_must_match(gateway):
    argv = [gateway.bin, "user", "add", "ttyuser2", "-c", gateway.conf]
    code, shown = _pty_run(argv, [(b"New gateway password: ", b"first-one\n"),
                                  (b"Again: ", b"second-one\n")])
    assert code != 0, shown
    assert b"differ" in shown, shown
    listing = out(gateway.cli("user", "list"))
    assert "ttyuser2" not in listing, listing


def test_no_terminal_and_no_stdin_flag_is_refused(gateway):
    # Without a terminal (a new session has no controlling terminal), the
    # command says to use --password-stdin rather than read stdin silently.
    import subprocess
    p = subprocess.run([gateway.bin, "user", "add", "nottyuser", "-c", gateway.conf],
                       input=b"pw\n", capture_output=True, timeout=30, start_new_session=True)
    assert p.returncode != 0
    assert "--password-stdin" in out(p), out(p)
