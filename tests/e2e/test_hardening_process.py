"""
Process hygiene (issue 5): no core dumps, privileges dropped to the
configured user and group after binding, a master key readable by group or
others refused at start, and no password in the log or the store (IMAP
logins are covered by test_logs.py; here POP3 and SMTP too, failures and
upstream faults included, and the store's files as well as the log).
"""

import base64
import glob
import os
import pwd
import grp
import re
import subprocess

import pytest

from harness import (ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, port_accepts,
                     stop_process, wait_for)
from hostile import (HOWS, LOGIN_OK, PROTOS, device, login, new_gateway, proc_status, probe,
                     running_gateway)

ALICE_USERS = [(ALICE, ALICE_GW_PASSWORD, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)]


def test_core_dumps_disabled(gateway):
    with open("/proc/%d/limits" % gateway.proc.pid) as f:
        limits = f.read()
    assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits


def test_privileges_dropped(workdir, ca, dovecot, postfix):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    gw = new_gateway(workdir, ca, dovecot, postfix,
                     extra="user: nobody\ngroup: %s" % group)

    def prepare(g):
        # Users are added while nothing runs, then everything the gateway
        # reads or writes is handed to nobody.
        g.add_user(ALICE, ALICE_GW_PASSWORD)
        g.set_account(ALICE, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)
        for root, dirs, files in os.walk(g.dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
        os.chown(g.dir, nobody.pw_uid, nobody.pw_gid)

    with running_gateway(gw, before_run=prepare):
        st = proc_status(gw.proc.pid)
        assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
        assert st["Gid"].split() == [str(nobody.pw_gid)] * 4, st["Gid"]
        # No supplementary group of root's left behind.
        assert set(st["Groups"].split()) <= {str(nobody.pw_gid)}, st["Groups"]
        # It bound its ports first, and serves on them as nobody.
        for proto in PROTOS:
            c = device(gw, proto)
            try:
                assert LOGIN_OK[proto].match(login(c, proto, ALICE, ALICE_GW_PASSWORD)), c.dump()
                assert probe(c, proto)
            finally:
                c.close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_master_key_readable_by_others_refused(workdir, ca, dovecot, postfix, mode):
    gw = new_gateway(workdir, ca, dovecot, postfix)
    gw.write_config()
    gw.cli("init")
    key = os.path.join(gw.dir, "master.key")
    assert os.path.exists(key)
    os.chmod(key, mode)
    log_path = os.path.join(gw.dir, "refused.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([gw.bin, "run", "-c", gw.conf], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # It must exit; listening instead is the failure.
            wait_for(lambda: proc.poll() is not None or port_accepts(gw.addr, gw.imaps_port), 10,
                     "mailgate to exit or to listen")
            listening = proc.poll() is None
        finally:
            stop_process(proc)
    with open(log_path, "rb") as f:
        out = f.read().decode("utf-8", "replace")
    assert not listening, "mailgate started with a master key of mode %04o:\n%s" % (mode, out)
    assert proc.returncode not in (0, None) and proc.returncode > 0, (proc.returncode, out)
    assert key in out, "the message does not name the file:\n%s" % out
    assert re.search(r"\b0?%o\b" % mode, out), "the message does not give the mode:\n%s" % out


def secret_forms(name, password):
    forms = {password, base64.b64encode(password.encode()).decode(),
             base64.b64encode(("\0%s\0%s" % (name, password)).encode()).decode()}
    return forms


def test_no_secret_in_log_or_store(workdir, ca, dovecot, postfix):
    ok_pw = "gw-ok-Secret-4711"
    down_pw = "gw-down-Secret-4712"
    down_app = "app-down-Secret-4713"
    wrong_pw = "gw-wrong-Secret-4714"
    gw = new_gateway(workdir, ca, dovecot, postfix)
    users = ALICE_USERS + [("sok", ok_pw, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD),
                           ("sdown", down_pw, "down", "sdown@example.test", down_app)]
    with running_gateway(gw, users=users):
        for proto in PROTOS:
            for how in HOWS[proto]:
                for name, pw in (("sok", ok_pw), ("sok", wrong_pw), ("sdown", down_pw),
                                 ("nosuchuser", wrong_pw)):
                    c = device(gw, proto)
                    try:
                        login(c, proto, name, pw, how)
                    finally:
                        c.close()
        log = gw.log_text()
        secrets_ = set()
        for name, pw in (("sok", ok_pw), ("sok", wrong_pw), ("sdown", down_pw),
                         ("nosuchuser", wrong_pw), (ALICE_LOGIN, ALICE_APP_PASSWORD),
                         ("sdown@example.test", down_app), (ALICE, ALICE_GW_PASSWORD)):
            secrets_ |= secret_forms(name, pw)
        for s in secrets_:
            assert s not in log, "secret %r in the gateway log" % s
        store_files = [p for p in glob.glob(os.path.join(gw.dir, "store.db*"))]
        assert store_files
        for path in store_files:
            with open(path, "rb") as f:
                data = f.read()
            for s in secrets_:
                assert s.encode() not in data, "secret %r in %s" % (s, path)
