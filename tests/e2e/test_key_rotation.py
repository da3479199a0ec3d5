"""
Master key rotation while the gateway serves: `key rotate` makes a new key,
keeps the old one as MASTER_KEY.<id> and re-encrypts every app password;
sessions being relayed go on, and new logins on every protocol work without
a restart (the gateway re-reads its keyring when it meets a secret sealed
under a key it has not loaded). `key prune` then removes the old key file.
"""

import os
import re
import secrets

from creds import (EXIT_OK, Live, assert_all_work, cli_json, cli_status, device_add,
                   live_sessions, out)
from harness import ALICE, ALICE_GW_PASSWORD, ALICE_LOGIN, make_message


def keys(gateway):
    rows = cli_json(gateway, "key", "list")
    for r in rows:
        assert re.match(r"\A[0-9a-f]{8}\Z", r["id"]), rows
    return rows


def secrets_count(gateway):
    return len(cli_json(gateway, "account", "list"))


def test_rotate_and_prune_while_serving(gateway, dovecot, make_user):
    u = make_user(provider="testprov-starttls")
    phone = device_add(gateway, u.name, "phone")
    subject = "keyrot-" + secrets.token_hex(4)
    dovecot.append(ALICE_LOGIN, "INBOX", make_message(subject))
    master = os.path.join(gateway.dir, "master.key")
    pid = gateway.proc.pid

    before = keys(gateway)
    n = secrets_count(gateway)
    assert n >= 2, n
    assert len(before) == 1 and before[0]["current"] is True, before
    assert before[0]["secrets"] == n, before
    old = before[0]["id"]

    with live_sessions() as ss:
        reader = Live(gateway, ALICE, ALICE_GW_PASSWORD, idle=False)
        idler = Live(gateway, u.name, phone)
        ss += [reader, idler]
        assert any(subject in s for s in reader.fetch_subjects())

        p = cli_status(gateway, "key", "rotate")
        assert p.returncode == EXIT_OK, out(p)
        assert os.path.isfile(master + "." + old), sorted(os.listdir(gateway.dir))

        # The sessions being relayed carry on.
        reader.alive()
        assert any(subject in s for s in reader.fetch_subjects())
        idler.alive()

        # New logins, on every protocol, with passwords and devices alike.
        assert_all_work(gateway, ALICE, ALICE_GW_PASSWORD)
        assert_all_work(gateway, u.name, phone)
        assert_all_work(gateway, u.name, u.password)

        after = keys(gateway)
        current = [k for k in after if k["current"]]
        assert len(current) == 1 and current[0]["id"] != old, after
        assert current[0]["secrets"] == n, after
        assert [(k["id"], k["secrets"]) for k in after if not k["current"]] == [(old, 0)], after
        # Every account now says it is sealed under the new key.
        for a in cli_json(gateway, "account", "list"):
            if "key_id" in a:
                assert a["key_id"] == current[0]["id"], a

        p = cli_status(gateway, "key", "prune")
        assert p.returncode == EXIT_OK, out(p)
        assert not os.path.exists(master + "." + old), sorted(os.listdir(gateway.dir))
        assert os.path.isfile(master)
        assert [(k["id"], k["current"], k["secrets"]) for k in keys(gateway)] == \
            [(current[0]["id"], True, n)]

        # Still serving: the live sessions, old users and an account stored
        # after the rotation.
        reader.alive()
        idler.alive()
        assert_all_work(gateway, ALICE, ALICE_GW_PASSWORD)
        assert_all_work(gateway, u.name, phone)
        v = make_user()
        assert_all_work(gateway, v.name, v.password)
    assert gateway.proc.poll() is None and gateway.proc.pid == pid, "the gateway restarted or died"
    # Both admin changes are in the audit, made by the CLI.
    details = [r["detail"] for r in cli_json(gateway, "audit")
               if r["kind"] == "admin" and r["client"] == "cli"]
    for verb in ("key rotate", "key prune"):
        assert any(d.startswith(verb) for d in details), (verb, details)


def test_prune_without_retired_keys(gateway):
    # With nothing retired, prune removes nothing: the current key stays.
    before = keys(gateway)
    p = cli_status(gateway, "key", "prune")
    assert p.returncode == EXIT_OK, out(p)
    assert keys(gateway) == before
    assert os.path.isfile(os.path.join(gateway.dir, "master.key"))
