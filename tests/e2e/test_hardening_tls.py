"""
TLS towards devices (issue 5): TLS 1.2 and 1.3 only, forward-secret AEAD
suites for TLS 1.2, and session resumption (session IDs or tickets in TLS
1.2, tickets in TLS 1.3).

Python's ssl (like OpenSSL's default security level on Debian) will not
even offer TLS 1.1, so the old-protocol client is `openssl s_client` with a
configuration that allows it (checked against an `openssl s_server` that
accepts TLS 1.1, so that a refusal is the gateway's). The gateway itself
runs with that permissive OpenSSL configuration too: refusing TLS 1.1 must
be its own setting, not the system's.
"""

import contextlib
import os
import re
import socket
import ssl
import subprocess

import pytest

from harness import (ALICE, ALICE_APP_PASSWORD, ALICE_GW_PASSWORD, ALICE_LOGIN, IO_TIMEOUT,
                     free_port, logout, port_accepts, stop_process, wait_for)
from hostile import new_gateway, running_gateway

ALICE_USERS = [(ALICE, ALICE_GW_PASSWORD, "testprov", ALICE_LOGIN, ALICE_APP_PASSWORD)]

PERMISSIVE_CNF = """\
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = ALL@SECLEVEL=0
"""

ESTABLISHED = re.compile(r"Cipher is (?!\(NONE\))\S+")


@pytest.fixture(scope="module")
def permissive_cnf(workdir):
    path = os.path.join(workdir, "openssl-permissive.cnf")
    with open(path, "w") as f:
        f.write(PERMISSIVE_CNF)
    return path


@contextlib.contextmanager
def environ(name, value):
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


@pytest.fixture(scope="module")
def old_tls_gateway(workdir, ca, dovecot, postfix, permissive_cnf):
    """A gateway whose OpenSSL configuration would allow TLS 1.0 and 1.1."""
    gw = new_gateway(workdir, ca, dovecot, postfix)
    with contextlib.ExitStack() as stack:
        with environ("OPENSSL_CONF", permissive_cnf):  # inherited by the gateway only
            stack.enter_context(running_gateway(gw, users=ALICE_USERS))
        yield gw


def s_client(cnf, addr, port, *args):
    env = dict(os.environ, OPENSSL_CONF=cnf)
    p = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (addr, port),
                        "-cipher", "ALL@SECLEVEL=0"] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=20, env=env)
    return p.stdout.decode("utf-8", "replace")


def test_tls11_client_can_connect_to_a_tls11_server(ca, permissive_cnf, workdir):
    # The control: this client does speak TLS 1.1 when a server allows it.
    port = free_port("127.0.0.2")
    env = dict(os.environ, OPENSSL_CONF=permissive_cnf)
    log = open(os.path.join(workdir, "s_server.log"), "wb")
    proc = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.2:%d" % port,
                             "-cert", ca.provider_cert, "-key", ca.provider_key, "-tls1_1",
                             "-cipher", "ALL@SECLEVEL=0", "-www", "-naccept", "2"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        wait_for(lambda: port_accepts("127.0.0.2", port), 10, "openssl s_server", proc=proc)
        out = s_client(permissive_cnf, "127.0.0.2", port, "-tls1_1")
        assert ESTABLISHED.search(out), out
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.parametrize("listener", ["imaps", "imap", "pop3s", "pop3", "smtps", "smtp"])
def test_tls11_refused(old_tls_gateway, permissive_cnf, listener):
    gw = old_tls_gateway
    port = getattr(gw, listener + "_port")
    args = ["-tls1_1"]
    if not listener.endswith("s"):
        args += ["-starttls", listener]
    out = s_client(permissive_cnf, gw.addr, port, *args)
    assert not ESTABLISHED.search(out), "TLS 1.1 was accepted on %s:\n%s" % (listener, out)
    # The same client with TLS 1.2 gets in: the refusal was about the version.
    args[0] = "-tls1_2"
    out = s_client(permissive_cnf, gw.addr, port, *args)
    assert ESTABLISHED.search(out), out


def context(gateway, version, ciphers=None):
    ctx = gateway.ca.context()
    ctx.minimum_version = version
    ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def connect(gateway, port, ctx, session=None):
    sock = socket.create_connection((gateway.addr, port), timeout=IO_TIMEOUT)
    return ctx.wrap_socket(sock, server_hostname=gateway.addr, session=session)


def greeting(s):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        assert chunk, "closed before the greeting"
        data += chunk
    return data


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_tls13_work(gateway, version):
    for port in (gateway.imaps_port, gateway.pop3s_port, gateway.smtps_port):
        with connect(gateway, port, context(gateway, version)) as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
            assert greeting(s)[:1] in (b"*", b"+", b"2")
            if version == ssl.TLSVersion.TLSv1_2:
                name, _, _ = s.cipher()
                assert ("GCM" in name or "CHACHA20" in name) and "ECDHE" in name, name


def test_tls12_weak_suites_refused(gateway):
    # CBC with SHA-1 MACs, and no forward secrecy: nothing a modern gateway takes.
    for ciphers in ("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256:AES256-SHA"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with connect(gateway, gateway.imaps_port,
                         context(gateway, ssl.TLSVersion.TLSv1_2, ciphers)) as s:
                greeting(s)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("listener", ["imaps", "pop3s", "smtps"])
def test_session_resumption(gateway, version, listener):
    port = getattr(gateway, listener + "_port")
    ctx = context(gateway, version)
    with connect(gateway, port, ctx) as s:
        # In TLS 1.3 the ticket comes after the handshake: the greeting's
        # round trip reads it.
        greeting(s)
        session = s.session
        assert not s.session_reused
    assert session is not None and (version == ssl.TLSVersion.TLSv1_2 or session.has_ticket)
    with connect(gateway, port, ctx, session=session) as s:
        greeting(s)
        assert s.session_reused, "the gateway did not resume the %s session" % s.version()


def suite_of(out):
    m = ESTABLISHED.search(out)
    return m.group(0).split()[-1] if m else out


@pytest.mark.parametrize("offered, chosen", [
    # OpenSSL's own order (AES-256 first): the gateway's preference wins.
    ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
     "TLS_AES_128_GCM_SHA256"),
    # A device without AES instructions lists ChaCha20 first and gets it.
    ("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
     "TLS_CHACHA20_POLY1305_SHA256"),
    # A device that offers one suite gets that one.
    ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
])
def test_tls13_suite_preference(gateway, offered, chosen):
    # AES-128-GCM first (SHA-256 hashes the handshake, in hardware on
    # current CPUs), ChaCha20 for devices that ask for it first.
    p = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (gateway.addr, gateway.imaps_port),
                        "-CAfile", gateway.ca.ca_cert, "-verify_return_error", "-tls1_3",
                        "-ciphersuites", offered],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=20)
    out = p.stdout.decode("utf-8", "replace")
    assert suite_of(out) == chosen, out


def test_upstream_offers_aes128_first(gateway):
    # Dovecot takes the client's order (ssl_prefer_server_ciphers = no), so
    # the suite it settles on is the first one the gateway offered.
    off = len(gateway.log_text())
    m = gateway.imap_ssl()
    try:
        m.login(ALICE, ALICE_GW_PASSWORD)
    finally:
        logout(m)
    lines = re.findall(r"upstream connected .* cipher=(\S+)", gateway.log_text()[off:])
    assert lines == ["TLS_AES_128_GCM_SHA256"], gateway.log_text()[off:]
