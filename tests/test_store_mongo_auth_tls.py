"""MongoDB as users run it: SCRAM-SHA-256 users (``--auth``) and TLS with a self-made certificate,
on a real ``secantusd-py`` the tests start (pymongo over TCP, the store's own client)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest

from anfe.core.errors import StoreError, StoreUnreachableError
from anfe.core.store import open_store
from testkit.secantus_server import SecantusServer

USER, PASSWORD = "curator", "Tr0ub4dor&3 horse"
WRONG = "hunter2-wrong"


# -- auth -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A server with one user (readWrite on the database ``anfe`` only), restarted with --auth:
    how secantusd (like mongod) is provisioned."""
    server = SecantusServer(tmp_path_factory.mktemp("auth") / "data").start()
    with pymongo.MongoClient(server.uri(), serverSelectionTimeoutMS=5000) as client:
        client.admin.command("createUser", USER, pwd=PASSWORD, roles=[{"role": "readWrite", "db": "anfe"}])
    server.stop()
    server.auth = True
    with server.start():
        yield server


def test_user_and_password_in_the_uri_work(auth_server: SecantusServer) -> None:
    uri = auth_server.uri("anfe", user=USER, password=PASSWORD)
    assert uri.endswith("/anfe?authSource=admin")
    with open_store(uri) as store:
        store.upsert_image({"content_hash": "h1", "gender": "man"})
        store.save_build({"id": "g_1"})
        assert store.append_decision({"action": "keep"}) == 1
        assert store.get_image("h1") == {"content_hash": "h1", "gender": "man"}
        assert PASSWORD not in store.uri and "***" in store.uri


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        (USER, WRONG, r"refused access \(authentication failed\): check the user and password"),
        ("nobody", PASSWORD, r"refused access \(authentication failed\)"),
        (None, None, r"refused access \(.*requires authentication\)"),
    ],
)
@pytest.mark.timeout(60)
def test_bad_credentials_fail_fast_with_one_line(auth_server, user, password, expected) -> None:
    uri = auth_server.uri("anfe", user=user, password=password)
    started = time.monotonic()
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(uri)
    assert time.monotonic() - started < 3  # no waiting out a server-selection timeout
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert not isinstance(caught.value, StoreUnreachableError)
    for secret in (PASSWORD, WRONG, "Tr0ub4dor", "hunter2"):
        assert secret not in message


def test_a_database_the_user_has_no_role_on_is_refused(auth_server: SecantusServer) -> None:
    with pytest.raises(StoreError, match=r"refused access \(not authorized on other.*user's roles"):
        open_store(auth_server.uri("other", user=USER, password=PASSWORD))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_cli_prints_one_line_and_never_the_password(auth_server: SecantusServer, tmp_path: Path) -> None:
    uri = auth_server.uri("anfe", user=USER, password=WRONG)
    for args in (["builds", "list", "--db", uri], ["-vv", "builds", "list", "--db", uri]):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "anfe", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)
        assert time.monotonic() - started < 20
        assert done.returncode == 1
        if "-vv" not in args:
            assert done.stdout == ""
            assert done.stderr.count("\n") == 1, done.stderr
            assert done.stderr.startswith("Error: MongoDB at mongodb://curator:***@127.0.0.1:")
            assert "check the user and password in the URI" in done.stderr
        for secret in (WRONG, "hunter2"):  # not even in pymongo's debug log
            assert secret not in done.stdout + done.stderr
    # The same through the environment variable.
    env = {**__import__("os").environ, "ANFE_DB": uri}
    done = subprocess.run([sys.executable, "-m", "anfe", "builds", "list"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 1 and WRONG not in done.stdout + done.stderr
    assert "refused access" in done.stderr


# -- TLS --------------------------------------------------------------------------------------
def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A self-made CA and a server certificate for 127.0.0.1/localhost signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(name("anfe test CA")).issuer_name(name("anfe test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca_file, cert_file, key_file = _make_certificates(folder)
    with SecantusServer(folder / "data", tls_cert=cert_file, tls_key=key_file) as server:
        server.ca_file = ca_file
        yield server


def test_tls_with_the_ca_file_works(tls_server: SecantusServer) -> None:
    uri = f"mongodb://127.0.0.1:{tls_server.port}/anfe?tls=true&tlsCAFile={tls_server.ca_file}"
    with open_store(uri) as store:
        store.upsert_image({"content_hash": "h1"})
        assert store.get_image("h1") == {"content_hash": "h1"}
    # The hostname in the certificate is checked too: localhost is in it as well.
    uri = f"mongodb://localhost:{tls_server.port}/anfe?tls=true&tlsCAFile={tls_server.ca_file}"
    with open_store(uri) as store:
        assert store.count_images() == 1


@pytest.mark.timeout(60)
def test_tls_without_trusting_the_certificate_fails_fast(tls_server: SecantusServer) -> None:
    uri = f"mongodb://127.0.0.1:{tls_server.port}/anfe?tls=true"  # the self-made CA is not trusted
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
        open_store(uri, timeout_ms=2000)
    assert time.monotonic() - started < 10
    assert "\n" not in str(caught.value)


@pytest.mark.timeout(60)
def test_plain_connection_to_a_tls_server_fails_fast(tls_server: SecantusServer) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match=r"cannot connect to MongoDB at mongodb://127.0.0.1"):
        open_store(f"mongodb://127.0.0.1:{tls_server.port}/anfe", timeout_ms=2000)
    assert time.monotonic() - started < 10
