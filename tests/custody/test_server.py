"""The custodian's transport: only the application's client certificate gets past the TLS
handshake, and the application talks only to a custodian the custody CA vouches for."""

import json
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.custody import server_fixture
from yobikake.custody import pki
from yobikake.custody.protocol import CustodyUnavailable, Refusal
from yobikake.vault.custodian import HttpCustodian


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = server_fixture.start(tmp_path_factory.mktemp("custodian"), staff=(1,))
    yield running
    running.stop()


def answers(server, cert: tuple[Path, Path] | None) -> bool:
    """Whether an HTTP answer to GET /v1/health comes back over TLS with `cert` (a
    certificate and its key) or none. The client itself trusts the custody CA, so only
    the server's check of the client is tested."""
    context = ssl.create_default_context(cafile=pki.ClientFiles.of(server.client_dir).ca)
    if cert is not None:
        context.load_cert_chain(*cert)
    url = urlsplit(server.url)
    try:
        with (
            socket.create_connection((url.hostname, url.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=url.hostname) as tls,
        ):
            tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: custodian\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False


def test_the_application_s_client_certificate_is_answered(server):
    files = pki.ClientFiles.of(server.client_dir)
    assert answers(server, (files.cert, files.key))


def test_a_client_without_a_certificate_is_refused_at_the_handshake(server):
    assert not answers(server, None)
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(
            f"{server.url}/v1/health", verify=pki.ClientFiles.of(server.client_dir).ca, timeout=5
        )


def test_a_client_certificate_from_another_authority_is_refused(server, tmp_path):
    _, other_dir = server_fixture.init(tmp_path)
    other = pki.ClientFiles.of(other_dir)
    assert not answers(server, (other.cert, other.key))


def test_the_custodian_s_own_certificate_is_no_client_certificate(server):
    # Signed by the right authority, but for a TLS server only.
    own = pki.ServerFiles.of(server.home)
    assert not answers(server, (own.cert, own.key))


def test_the_application_refuses_a_custodian_its_authority_did_not_certify(server, tmp_path):
    # The application's own certificate, but another authority to trust: the server's
    # certificate does not verify, and nothing is sent.
    _, other_dir = server_fixture.init(tmp_path)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    ours, theirs = pki.ClientFiles.of(server.client_dir), pki.ClientFiles.of(other_dir)
    for source, target in (
        (theirs.ca, "ca.pem"),
        (ours.cert, "client.pem"),
        (ours.key, "client-key.pem"),
    ):
        (mixed / target).write_bytes(source.read_bytes())
    client = HttpCustodian(server.url, mixed)
    with pytest.raises(CustodyUnavailable):
        client.health()


# An open request the server can read, but whose batch key ids are changed below.
OPEN_REQUEST = {
    "justification": {
        "holder": {"user_id": 1, "role": "operator"},
        "purpose": "research",
        "grant_id": 1,
        "insurer_id": 1,
        "list_id": 1,
        "table": "intake_target",
        "row_id": 1,
        "fields": ["name_kana"],
    },
    "sealed": {"name_kana": None},
}


def test_requests_it_cannot_read_are_refused_as_bad(server):
    files = pki.ClientFiles.of(server.client_dir)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the custody CA
    session.cert, session.verify = (str(files.cert), str(files.key)), str(files.ca)
    not_json = session.post(f"{server.url}/v1/open", data=b"{", timeout=5)
    assert not_json.status_code == 400
    assert not_json.json()["code"] == Refusal.BAD_REQUEST
    missing = session.post(f"{server.url}/v1/open", json={"justification": {}}, timeout=5)
    assert missing.status_code == 400
    assert missing.json()["code"] == Refusal.BAD_REQUEST
    for batch_id in ("x", "07", "-1"):
        bad_key = session.post(
            f"{server.url}/v1/open",
            json={**OPEN_REQUEST, "wrapped_keys": {batch_id: "b64:AAAA"}},
            timeout=5,
        )
        assert bad_key.status_code == 400, batch_id
        assert bad_key.json()["code"] == Refusal.BAD_REQUEST
    bad_bulk = session.post(f"{server.url}/v1/open-bulk", json={"rows": {}}, timeout=5)
    assert bad_bulk.status_code == 400
    assert bad_bulk.json()["code"] == Refusal.BAD_REQUEST
    wrong_type = session.post(
        f"{server.url}/v1/lists", json={"list_id": "1", "insurer_id": 1}, timeout=5
    )
    assert wrong_type.status_code == 400
    assert session.get(f"{server.url}/v1/nothing", timeout=5).status_code == 404
    assert session.get(f"{server.url}/v1/open", timeout=5).status_code == 404
    health = json.loads(session.get(f"{server.url}/v1/health", timeout=5).content)
    assert health["status"] == "ok"


def test_the_server_keeps_a_pool_of_key_pairs_and_a_list_takes_one(server):
    client = server.client()
    try:
        deadline = time.monotonic() + 60
        while client.health()["key_pool"]["ready"] < server_fixture.KEY_POOL:
            assert time.monotonic() < deadline, "the pool was not filled"
            time.sleep(0.1)
        pool = server.home / "keys" / "pool"
        before = {p.stat().st_ino for p in pool.glob("key-*.pem")}
        client.create_list(4242, 7)
        taken = (server.home / "keys" / "list-4242.pem").stat().st_ino
        assert taken in before  # the list's key is a pooled one, not made on the spot
        assert taken not in {p.stat().st_ino for p in pool.glob("key-*.pem")}  # left the pool
        deadline = time.monotonic() + 60
        while client.health()["key_pool"]["ready"] < server_fixture.KEY_POOL:
            assert time.monotonic() < deadline, "the pool was not refilled"
            time.sleep(0.1)
    finally:
        client.close()
