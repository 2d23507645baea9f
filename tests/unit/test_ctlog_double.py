"""The CT log double signs RFC 6962 SCTs that an independent reading of the RFC verifies, in process and
over HTTPS (``add-pre-chain``), and refuses what a real log refuses."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import signal
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import NameOID

from entrypoint.testing.ctlog import (
    ADD_PRE_CHAIN_PATH,
    CTLog,
    CTLogDouble,
    CTLogError,
    sct_list_extension,
    strip_poison,
)
from tests.support import doubles

TIMEOUT = 5.0


# -- a small CA of the test's own, and an independent reading of RFC 6962 -------------------------------


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class _Chain:
    """A root, an intermediate, and leaves made from one builder with or without the poison."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.key = ec.generate_private_key(ec.SECP384R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
        self.root = self._ca(root_name, root_name, self.root_key.public_key(), self.root_key, now)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test intermediate")])
        self.intermediate = self._ca(name, root_name, self.key.public_key(), self.root_key, now)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.serial = x509.random_serial_number()
        self.now = now.replace(microsecond=0)

    @staticmethod
    def _ca(
        subject: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePublicKey,
        signer: ec.EllipticCurvePrivateKey,
        now: dt.datetime,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer, hashes.SHA384())
        )

    def leaf(self, *, poison: bool = False, extensions: bool = True) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(self.serial)
            .not_valid_before(self.now)
            .not_valid_after(self.now + dt.timedelta(minutes=10))
        )
        if extensions:
            uri = x509.UniformResourceIdentifier("https://example.test/leaf")
            builder = builder.add_extension(x509.SubjectAlternativeName([uri]), critical=True)
        if poison:
            builder = builder.add_extension(x509.PrecertPoison(), critical=True)
        return builder.sign(self.key, hashes.SHA384())

    def precert_chain(self) -> list[bytes]:
        return [_der(self.leaf(poison=True)), _der(self.intermediate), _der(self.root)]

    @property
    def issuer_spki(self) -> bytes:
        return _spki(self.key.public_key())


def _digitally_signed(timestamp_ms: int, issuer_spki: bytes, tbs: bytes) -> bytes:
    """RFC 6962 §3.2, read independently of the double: version, signature type, timestamp, the u16
    entry type (precert_entry), the issuer key hash, the u24-length TBS, and no extensions."""
    issuer_key_hash = hashlib.sha256(issuer_spki).digest()
    return (
        bytes([0, 0])
        + timestamp_ms.to_bytes(8, "big")
        + (1).to_bytes(2, "big")
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + (0).to_bytes(2, "big")
    )


@dataclass(frozen=True)
class _Fields:
    version: int
    log_id: bytes
    timestamp: int
    extensions: bytes
    hash: int
    signature_algorithm: int
    signature: bytes
    rest: bytes


def _fields(sct: bytes) -> _Fields:
    """An SCT's TLS fields (RFC 6962 §3.2 and RFC 5246 §4.7), parsed independently of the double."""
    ext_end = 43 + int.from_bytes(sct[41:43], "big")
    sig_end = ext_end + 4 + int.from_bytes(sct[ext_end + 2 : ext_end + 4], "big")
    return _Fields(
        version=sct[0],
        log_id=sct[1:33],
        timestamp=int.from_bytes(sct[33:41], "big"),
        extensions=sct[43:ext_end],
        hash=sct[ext_end],
        signature_algorithm=sct[ext_end + 1],
        signature=sct[ext_end + 4 : sig_end],
        rest=sct[sig_end:],
    )


def _verifies(public_key_der: bytes, signature: bytes, data: bytes) -> bool:
    key = serialization.load_der_public_key(public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def chain() -> _Chain:
    return _Chain()


# -- in process ------------------------------------------------------------------------------------------


def test_sign_precert_is_an_rfc6962_sct(chain: _Chain) -> None:
    log = CTLog()
    assert log.log_id == hashlib.sha256(log.public_key_der).digest()
    assert isinstance(serialization.load_der_public_key(log.public_key_der), ec.EllipticCurvePublicKey)
    tbs = chain.leaf().tbs_certificate_bytes
    sct = _fields(log.sign_precert(tbs, chain.issuer_spki, 1_700_000_000_123))
    assert sct.version == 0
    assert sct.log_id == log.log_id
    assert sct.timestamp == 1_700_000_000_123
    assert sct.extensions == b""
    assert (sct.hash, sct.signature_algorithm) == (4, 3)  # sha256, ecdsa
    assert sct.rest == b""
    signature = sct.signature
    assert _verifies(
        log.public_key_der, signature, _digitally_signed(1_700_000_000_123, chain.issuer_spki, tbs)
    )
    # The signature covers the issuer and the TBS: neither can be swapped.
    assert not _verifies(log.public_key_der, signature, _digitally_signed(1_700_000_000_123, tbs[:10], tbs))
    other_tbs = chain.leaf(extensions=False).tbs_certificate_bytes
    assert not _verifies(
        log.public_key_der, signature, _digitally_signed(1_700_000_000_123, chain.issuer_spki, other_tbs)
    )


def test_sign_precert_defaults_to_now(chain: _Chain) -> None:
    before = time.time_ns() // 1_000_000
    sct = _fields(CTLog().sign_precert(chain.leaf().tbs_certificate_bytes, chain.issuer_spki))
    assert before <= sct.timestamp <= time.time_ns() // 1_000_000


def test_the_sct_list_extension_parses_as_pyca_reads_embedded_scts(chain: _Chain) -> None:
    log = CTLog()
    plain = chain.leaf()
    sct = log.sign_precert(plain.tbs_certificate_bytes, chain.issuer_spki, 42_000)
    final = (
        x509.CertificateBuilder()
        .subject_name(plain.subject)
        .issuer_name(plain.issuer)
        .public_key(chain.leaf_key.public_key())
        .serial_number(plain.serial_number)
        .not_valid_before(plain.not_valid_before_utc)
        .not_valid_after(plain.not_valid_after_utc)
        .add_extension(plain.extensions[0].value, critical=True)
        .add_extension(sct_list_extension([sct]), critical=False)
        .sign(chain.key, hashes.SHA384())
    )
    assert final.tbs_precertificate_bytes == plain.tbs_certificate_bytes
    parsed = final.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    [embedded] = list(parsed)
    assert embedded.log_id == log.log_id
    assert embedded.entry_type == LogEntryType.PRE_CERTIFICATE
    assert embedded.timestamp == dt.datetime.fromtimestamp(42, dt.UTC).replace(tzinfo=None)
    assert isinstance(embedded.signature_hash_algorithm, hashes.SHA256)
    assert _verifies(
        log.public_key_der,
        embedded.signature,
        _digitally_signed(42_000, chain.issuer_spki, final.tbs_precertificate_bytes),
    )


def test_wrong_key_keeps_the_log_id_but_not_the_signature(chain: _Chain) -> None:
    log = CTLog()
    tbs = chain.leaf().tbs_certificate_bytes
    data = _digitally_signed(7, chain.issuer_spki, tbs)
    log.wrong_key = True
    stray = _fields(log.sign_precert(tbs, chain.issuer_spki, 7))
    assert stray.log_id == log.log_id
    assert not _verifies(log.public_key_der, stray.signature, data)
    # The argument overrides the knob, both ways.
    good = _fields(log.sign_precert(tbs, chain.issuer_spki, 7, wrong_key=False))
    assert _verifies(log.public_key_der, good.signature, data)
    log.wrong_key = False
    forced = _fields(log.sign_precert(tbs, chain.issuer_spki, 7, wrong_key=True))
    assert not _verifies(log.public_key_der, forced.signature, data)


def test_a_ct_log_key_must_be_p256() -> None:
    with pytest.raises(ValueError, match="P-256"):
        CTLog(ec.generate_private_key(ec.SECP384R1()))


def test_strip_poison_gives_the_tbs_without_the_poison(chain: _Chain) -> None:
    assert strip_poison(chain.leaf(poison=True).tbs_certificate_bytes) == chain.leaf().tbs_certificate_bytes
    # With the poison as the only extension, the extensions field goes altogether.
    only_poison = chain.leaf(poison=True, extensions=False).tbs_certificate_bytes
    assert strip_poison(only_poison) == chain.leaf(extensions=False).tbs_certificate_bytes
    with pytest.raises(ValueError, match="no poison"):
        strip_poison(chain.leaf().tbs_certificate_bytes)
    with pytest.raises(ValueError):
        strip_poison(b"\x30\x05\x02\x01")


# -- over HTTPS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[CTLogDouble]:
    with CTLogDouble() as srv:
        yield srv


@pytest.fixture
def log(server: CTLogDouble) -> Iterator[CTLogDouble]:
    """The module's log, its knobs reset after each test."""
    yield server
    server.fail_status = None
    server.wrong_key = False


def _client(srv: CTLogDouble) -> httpx.Client:
    return httpx.Client(
        base_url=srv.url, verify=ssl.create_default_context(cadata=srv.ca_pem.decode()), timeout=TIMEOUT
    )


def _submit(srv: CTLogDouble, chain_der: list[bytes]) -> httpx.Response:
    with _client(srv) as client:
        return client.post(
            ADD_PRE_CHAIN_PATH, json={"chain": [base64.b64encode(d).decode() for d in chain_der]}
        )


def test_add_pre_chain_answers_an_add_chain_response(log: CTLogDouble, chain: _Chain) -> None:
    before = time.time_ns() // 1_000_000
    submitted = chain.precert_chain()
    response = _submit(log, submitted)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"sct_version", "id", "timestamp", "extensions", "signature"}
    assert body["sct_version"] == 0
    assert base64.b64decode(body["id"]) == hashlib.sha256(log.public_key_der).digest()
    assert body["extensions"] == ""
    assert before <= body["timestamp"] <= time.time_ns() // 1_000_000
    signed = base64.b64decode(body["signature"])
    assert signed[:2] == b"\x04\x03"
    (length,) = struct.unpack("!H", signed[2:4])
    assert length == len(signed) - 4
    # What the log signed is the precertificate's TBS without its poison: the plain leaf's TBS.
    data = _digitally_signed(body["timestamp"], chain.issuer_spki, chain.leaf().tbs_certificate_bytes)
    assert _verifies(log.public_key_der, signed[4:], data)
    assert log.submissions[-1] == submitted


def test_wrong_key_over_https(log: CTLogDouble, chain: _Chain) -> None:
    log.wrong_key = True
    body = _submit(log, chain.precert_chain()).json()
    assert base64.b64decode(body["id"]) == log.log_id
    data = _digitally_signed(body["timestamp"], chain.issuer_spki, chain.leaf().tbs_certificate_bytes)
    assert not _verifies(log.public_key_der, base64.b64decode(body["signature"])[4:], data)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not a precertificate", "not a precertificate"),
        ("no issuer", "needs the precertificate and its issuer"),
        ("broken chain", "chain broken"),
        ("not DER", "failed to parse certificate"),
    ],
)
def test_add_pre_chain_refuses_bad_chains(log: CTLogDouble, chain: _Chain, case: str, message: str) -> None:
    precert, intermediate, root = chain.precert_chain()
    chains = {
        "not a precertificate": [_der(chain.leaf()), intermediate, root],
        "no issuer": [precert],
        "broken chain": [precert, root, intermediate],
        "not DER": [precert, b"garbage"],
    }
    before = len(log.submissions)
    response = _submit(log, chains[case])
    assert response.status_code == 400
    assert response.json()["error"].startswith("failed to verify add-chain contents: ")
    assert message in response.json()["error"]
    assert len(log.submissions) == before


@pytest.mark.parametrize(
    "body", [b"{", b'{"chain": "AAAA"}', b'{"chain": ["not base64!"]}', b"{}", b"[]"], ids=str
)
def test_add_pre_chain_refuses_bad_bodies(log: CTLogDouble, body: bytes) -> None:
    with _client(log) as client:
        response = client.post(ADD_PRE_CHAIN_PATH, content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("failed to parse add-chain body")


def test_routes_and_methods(log: CTLogDouble) -> None:
    with _client(log) as client:
        assert client.get(ADD_PRE_CHAIN_PATH).status_code == 405
        assert client.post("/ct/v1/add-chain", json={"chain": []}).status_code == 404
        assert client.get("/ct/v1/get-roots").json() == {"certificates": []}


def test_fault_knobs(log: CTLogDouble, chain: _Chain) -> None:
    log.fail_next(1, 503)
    assert _submit(log, chain.precert_chain()).status_code == 503
    assert _submit(log, chain.precert_chain()).status_code == 200


def test_roots_restrict_the_chains_accepted(chain: _Chain) -> None:
    other = _Chain()
    with CTLogDouble(roots=[_der(other.root)]) as srv:
        refused = _submit(srv, chain.precert_chain())
        assert refused.status_code == 400
        assert "does not end in a root this log accepts" in refused.json()["error"]
        srv.accept_root(_der(chain.root))
        assert _submit(srv, chain.precert_chain()).status_code == 200
        # A chain may stop short of the root it ends under.
        assert _submit(srv, chain.precert_chain()[:2]).status_code == 200
        with _client(srv) as client:
            roots = client.get("/ct/v1/get-roots").json()["certificates"]
        assert [base64.b64decode(r) for r in roots] == [_der(other.root), _der(chain.root)]


def test_client_verifies_the_sct_it_gets(log: CTLogDouble, chain: _Chain) -> None:
    client = log.client()
    assert client.log_id == log.log_id
    sct = _fields(client.add_pre_chain(chain.precert_chain()))
    data = _digitally_signed(sct.timestamp, chain.issuer_spki, chain.leaf().tbs_certificate_bytes)
    assert _verifies(log.public_key_der, sct.signature, data)
    log.wrong_key = True
    with pytest.raises(CTLogError, match="does not verify"):
        client.add_pre_chain(chain.precert_chain())
    log.wrong_key = False
    with pytest.raises(CTLogError, match="400"):
        client.add_pre_chain([_der(chain.leaf()), _der(chain.intermediate)])


def test_write_trusted_root_keeps_other_sections(log: CTLogDouble, tmp_path: Path) -> None:
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps({"tlogs": [{"baseUrl": "https://rekor.test"}]}))
    log.write_trusted_root(path)
    root = json.loads(path.read_text())
    assert root["tlogs"] == [{"baseUrl": "https://rekor.test"}]
    [entry] = root["ctlogs"]
    assert entry["baseUrl"] == log.url
    assert base64.b64decode(entry["publicKey"]["rawBytes"]) == log.public_key_der
    assert entry["publicKey"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
    assert base64.b64decode(entry["logId"]["keyId"]) == log.log_id
    start = dt.datetime.strptime(entry["publicKey"]["validFor"]["start"], "%Y-%m-%dT%H:%M:%SZ")
    assert start.replace(tzinfo=dt.UTC) < dt.datetime.now(dt.UTC)


@pytest.mark.slow
def test_module_runner_serves_until_sigterm(tmp_path: Path, chain: _Chain) -> None:
    ca, key, root = tmp_path / "ca.pem", tmp_path / "ct.pub", tmp_path / "trusted_root.json"
    accepted = tmp_path / "root.pem"
    accepted.write_bytes(chain.root.public_bytes(serialization.Encoding.PEM))
    args = ("--ca-out", str(ca), "--public-key-out", str(key), "--trusted-root", str(root))
    with doubles.serving("entrypoint.testing.ctlog", *args, "--root", str(accepted)) as (proc, url):
        context = ssl.create_default_context(cadata=ca.read_text())
        body = {"chain": [base64.b64encode(d).decode() for d in chain.precert_chain()]}
        with httpx.Client(base_url=url, verify=context, timeout=TIMEOUT) as client:
            answer = client.post(ADD_PRE_CHAIN_PATH, json=body).json()
        public = serialization.load_pem_public_key(key.read_bytes())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public_der = _spki(public)
        data = _digitally_signed(answer["timestamp"], chain.issuer_spki, chain.leaf().tbs_certificate_bytes)
        assert _verifies(public_der, base64.b64decode(answer["signature"])[4:], data)
        [entry] = json.loads(root.read_text())["ctlogs"]
        assert base64.b64decode(entry["publicKey"]["rawBytes"]) == public_der
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_module_runner_refuses_a_missing_root_file(tmp_path: Path) -> None:
    result = doubles.run("entrypoint.testing.ctlog", "--root", str(tmp_path / "missing.pem"))
    assert result.returncode == 2
    assert "ready" not in result.stdout
