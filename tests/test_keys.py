"""Key pairs, JWK/PEM reading and writing, and the client assertion checked by a hand-written JWS decoder."""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from linepush.errors import ConfigurationError, ValidationError
from linepush.keys import (
    AUDIENCE,
    AssertionSigner,
    PrivateKey,
    generate_key_pair,
    load_private_key,
    parse_private_key,
)

NOW = 1_700_000_000.75
CHANNEL = "1234567890"
KID = "536e453c-aa93-4449-8e90-add2608783c6"


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate_key_pair()


@pytest.fixture(scope="module")
def other_key() -> PrivateKey:
    return generate_key_pair()


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64int(segment: str) -> int:
    return int.from_bytes(b64decode(segment), "big")


def decode_jws(token: str, public_key: rsa.RSAPublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """An independent RS256 check: split, decode, verify the PKCS#1 v1.5 SHA-256 signature ourselves."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    for segment in (header_b64, payload_b64, signature_b64):
        assert "=" not in segment and "+" not in segment and "/" not in segment
    public_key.verify(
        b64decode(signature_b64),
        f"{header_b64}.{payload_b64}".encode("ascii"),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(b64decode(header_b64)), json.loads(b64decode(payload_b64))


def key_material(key: PrivateKey) -> list[str]:
    """Every private JWK member value, and chunks of them, that must never show up in a text."""
    jwk = key.private_jwk()
    values = [jwk[m] for m in ("d", "p", "q", "dp", "dq", "qi")]
    return values + [v[:24] for v in values]


# --- generation and JWKs ---


def test_generated_key_is_rsa_2048_with_exponent_65537(key: PrivateKey) -> None:
    assert key.key_size == 2048
    numbers = key.cryptography_key.private_numbers()
    assert numbers.public_numbers.e == 65537
    assert numbers.public_numbers.n.bit_length() == 2048


def test_two_generated_keys_differ(key: PrivateKey, other_key: PrivateKey) -> None:
    assert key.public_jwk()["n"] != other_key.public_jwk()["n"]


def test_public_jwk_has_exactly_the_console_members_and_no_kid(key: PrivateKey) -> None:
    jwk = key.public_jwk()
    assert set(jwk) == {"kty", "alg", "use", "e", "n"}
    assert "kid" not in jwk
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert jwk["e"] == "AQAB"
    numbers = key.cryptography_key.public_key().public_numbers()
    assert b64int(jwk["n"]) == numbers.n
    # base64url without padding: 256 bytes encode to exactly 342 characters.
    assert len(jwk["n"]) == 342
    assert set(jwk["n"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_public_jwk_is_a_copy(key: PrivateKey) -> None:
    key.public_jwk()["kid"] = "x"
    assert "kid" not in key.public_jwk()


def test_private_jwk_has_all_rsa_members_matching_the_key(key: PrivateKey) -> None:
    jwk = key.private_jwk()
    assert set(jwk) == {"kty", "alg", "use", "e", "n", "d", "p", "q", "dp", "dq", "qi"}
    numbers = key.cryptography_key.private_numbers()
    assert b64int(jwk["d"]) == numbers.d
    assert b64int(jwk["p"]) == numbers.p
    assert b64int(jwk["q"]) == numbers.q
    assert b64int(jwk["dp"]) == numbers.dmp1
    assert b64int(jwk["dq"]) == numbers.dmq1
    assert b64int(jwk["qi"]) == numbers.iqmp
    assert all("=" not in value for value in jwk.values())


def test_private_jwk_round_trips(key: PrivateKey) -> None:
    again = parse_private_key(json.dumps(key.private_jwk()))
    assert again.private_jwk() == key.private_jwk()


def test_private_jwk_with_only_n_e_d_recovers_the_primes(key: PrivateKey) -> None:
    jwk = key.private_jwk()
    minimal = {m: jwk[m] for m in ("kty", "n", "e", "d")}
    assert parse_private_key(json.dumps(minimal)).public_jwk() == key.public_jwk()


def test_jwk_set_with_one_key_is_accepted(key: PrivateKey) -> None:
    loaded = parse_private_key(json.dumps({"keys": [key.private_jwk()]}))
    assert loaded.public_jwk() == key.public_jwk()


def test_thumbprint_follows_rfc_7638(key: PrivateKey) -> None:
    import hashlib

    jwk = key.public_jwk()
    canonical = json.dumps(
        {"n": jwk["n"], "kty": "RSA", "e": jwk["e"]}, sort_keys=True, separators=(",", ":")
    )
    assert canonical.startswith('{"e":"AQAB","kty":"RSA","n":"')
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert key.thumbprint() == expected


def test_repr_and_str_hide_the_key(key: PrivateKey) -> None:
    for text in (repr(key), str(key), f"{key}"):
        assert text.startswith("PrivateKey(RSA-2048")
        assert key.public_jwk()["n"][:24] not in text
        for secret in key_material(key):
            assert secret not in text


def test_private_key_cannot_be_pickled(key: PrivateKey) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_sign_produces_a_verifiable_rs256_signature(key: PrivateKey) -> None:
    signature = key.sign(b"hello")
    key.cryptography_key.public_key().verify(signature, b"hello", padding.PKCS1v15(), hashes.SHA256())


# --- writing ---


def test_write_private_jwk_creates_a_0600_file_that_loads_back(key: PrivateKey, tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the mode must still be 0600
    try:
        path = key.write_private_jwk(tmp_path / "key.json")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == key.private_jwk()
    assert load_private_key(path, cache=False).private_jwk() == key.private_jwk()


def test_write_private_jwk_refuses_to_overwrite(
    key: PrivateKey, other_key: PrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "key.json"
    path.write_text("precious")
    with pytest.raises(ConfigurationError, match="already exists"):
        key.write_private_jwk(path)
    assert path.read_text() == "precious"


def test_write_private_jwk_refuses_a_symlink(key: PrivateKey, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "key.json").symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="already exists"):
        key.write_private_jwk(tmp_path / "key.json")
    assert not elsewhere.exists()


def test_write_private_jwk_overwrites_when_asked(
    key: PrivateKey, other_key: PrivateKey, tmp_path: Path
) -> None:
    path = key.write_private_jwk(tmp_path / "key.json")
    path.chmod(0o644)
    other_key.write_private_jwk(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == other_key.private_jwk()
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]  # no temporary file left behind


def test_write_private_jwk_into_a_missing_directory_is_a_clear_error(key: PrivateKey, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot create key file"):
        key.write_private_jwk(tmp_path / "nope" / "key.json")
    with pytest.raises(ConfigurationError, match="cannot create key file"):
        key.write_private_jwk(tmp_path / "nope" / "key.json", overwrite=True)


# --- loading ---


def write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def pem(key: PrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.cryptography_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def test_load_pkcs1_pem(key: PrivateKey, tmp_path: Path) -> None:
    data = pem(key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert data.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    loaded = load_private_key(write(tmp_path / "k.pem", data), cache=False)
    assert loaded.private_jwk() == key.private_jwk()


def test_load_pkcs8_pem(key: PrivateKey, tmp_path: Path) -> None:
    data = pem(key, serialization.PrivateFormat.PKCS8)
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key(write(tmp_path / "k.pem", data), cache=False)
    assert loaded.private_jwk() == key.private_jwk()


def test_load_jwk_with_bom_and_whitespace(key: PrivateKey, tmp_path: Path) -> None:
    path = write(tmp_path / "k.json", "\ufeff\n  " + json.dumps(key.private_jwk()) + "\n\n")
    assert load_private_key(path, cache=False).public_jwk() == key.public_jwk()


def test_load_is_cached_until_the_file_changes(
    key: PrivateKey, other_key: PrivateKey, tmp_path: Path
) -> None:
    path = key.write_private_jwk(tmp_path / "k.json")
    first = load_private_key(path)
    assert load_private_key(str(path)) is first
    other_key.write_private_jwk(path, overwrite=True)
    reloaded = load_private_key(path)
    assert reloaded is not first
    assert reloaded.public_jwk() == other_key.public_jwk()
    assert load_private_key(path, cache=False) is not reloaded


def rsa_1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def bad_files(key: PrivateKey) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, expected text in the error)."""
    crypto = key.cryptography_key
    jwk = key.private_jwk()
    public_jwk = key.public_jwk()
    small = rsa_1024()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    broken = dict(jwk, q=jwk["p"])
    return {
        "public JWK": (json.dumps(public_jwk).encode(), "is a public key"),
        "public PEM": (
            crypto.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "public key",
        ),
        "PKCS#1 public PEM": (
            crypto.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
            "public key",
        ),
        "EC PEM": (
            ec_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "is an EC key; LINE needs an RSA key",
        ),
        "Ed25519 PEM": (
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "is an Ed25519 key",
        ),
        "EC JWK": (
            json.dumps({"kty": "EC", "crv": "P-256", "d": "abc"}).encode(),
            "of type 'EC'; LINE needs an RSA key",
        ),
        "oct JWK": (json.dumps({"kty": "oct", "k": jwk["d"]}).encode(), "of type 'oct'"),
        "RS512 JWK": (json.dumps(dict(jwk, alg="RS512")).encode(), "'RS512'; LINE needs an RS256 key"),
        "1024-bit PEM": (
            small.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "RSA-1024; LINE needs at least 2048 bits",
        ),
        "1024-bit JWK": (
            json.dumps(
                {
                    "kty": "RSA",
                    "n": _b64(small.private_numbers().public_numbers.n),
                    "e": "AQAB",
                    "d": _b64(small.private_numbers().d),
                }
            ).encode(),
            "RSA-1024",
        ),
        "inconsistent JWK": (json.dumps(broken).encode(), "numbers do not fit together"),
        "JWK with a non-base64url member": (json.dumps(dict(jwk, d="not*base64")).encode(), "'d'"),
        "JWK with a numeric member": (json.dumps(dict(jwk, p=12345)).encode(), "'p'"),
        "JWK without kty": (json.dumps({"n": jwk["n"], "d": jwk["d"]}).encode(), "no 'kty'"),
        "JWK Set of two": (json.dumps({"keys": [jwk, jwk]}).encode(), "exactly one"),
        "JSON array": (b"[1, 2]", "neither a JWK"),
        "JSON with trailing text": (b'{"kty": "RSA"} trailing', "cannot be parsed"),
        "JSON string": (b'"just a string"', "neither a JWK"),
        "broken JSON": (('{"kty": "RSA", "d": "' + jwk["d"] + '"').encode(), "cannot be parsed"),
        "encrypted PEM": (
            crypto.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ),
            "encrypted",
        ),
        "truncated PEM": (
            pem(key, serialization.PrivateFormat.PKCS8)[:400] + b"\n-----END PRIVATE KEY-----\n",
            "not a readable private key",
        ),
        "OpenSSH key": (b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n", "OpenSSH"),
        "DER bytes": (
            crypto.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "neither a JWK nor a PEM",
        ),
        "plain text": (b"hello, this is not a key\n", "neither a JWK"),
        "empty file": (b"", "neither a JWK"),
    }


def _b64(number: int) -> str:
    return (
        base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


BAD_CASES = [
    "public JWK",
    "public PEM",
    "PKCS#1 public PEM",
    "EC PEM",
    "Ed25519 PEM",
    "EC JWK",
    "oct JWK",
    "RS512 JWK",
    "1024-bit PEM",
    "1024-bit JWK",
    "inconsistent JWK",
    "JWK with a non-base64url member",
    "JWK with a numeric member",
    "JWK without kty",
    "JWK Set of two",
    "JSON array",
    "JSON with trailing text",
    "JSON string",
    "broken JSON",
    "encrypted PEM",
    "truncated PEM",
    "OpenSSH key",
    "DER bytes",
    "plain text",
    "empty file",
]


@pytest.fixture(scope="module")
def bad(key: PrivateKey) -> dict[str, tuple[bytes, str]]:
    return bad_files(key)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_key_file_is_a_clear_configuration_error(
    case: str, bad: dict[str, tuple[bytes, str]], key: PrivateKey, tmp_path: Path
) -> None:
    data, expected = bad[case]
    path = write(tmp_path / "key", data)
    with pytest.raises(ConfigurationError) as caught:
        load_private_key(path, cache=False)
    text = str(caught.value)
    assert expected in text
    assert str(path) in text
    for secret in key_material(key):
        assert secret not in text
    # No chained exception carries the file content along either.
    assert caught.value.__cause__ is None


def test_bad_cases_cover_every_builder(bad: dict[str, tuple[bytes, str]]) -> None:
    assert sorted(BAD_CASES) == sorted(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_private_key(tmp_path / "absent.json")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigurationError, match="keys is a directory"):
        load_private_key(tmp_path / "keys")


def test_fifo_instead_of_file_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigurationError, match="pipe is not a regular file"):
        load_private_key(tmp_path / "pipe")


def test_unreadable_file(key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = key.write_private_jwk(tmp_path / "k.json")
    real_open = os.open

    # Tests may run as root, who reads a chmod-0 file anyway, so the refusal is simulated at os.open.
    def refusing_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(ConfigurationError, match="cannot be read: permission denied"):
        load_private_key(path, cache=False)


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with path.open("wb") as f:
        f.truncate(2 << 20)
    with pytest.raises(ConfigurationError, match="too large"):
        load_private_key(path, cache=False)


def test_private_key_wrapper_refuses_small_and_non_rsa_keys() -> None:
    with pytest.raises(ConfigurationError, match="RSA-1024"):
        PrivateKey(rsa_1024())
    with pytest.raises(ConfigurationError, match="EC key"):
        PrivateKey(ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]


def test_a_key_longer_than_2048_bits_is_accepted(tmp_path: Path) -> None:
    big = PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=3072))
    assert load_private_key(big.write_private_jwk(tmp_path / "k.json")).key_size == 3072


# --- the client assertion ---


def test_assertion_header_claims_and_signature(key: PrivateKey) -> None:
    token = AssertionSigner(CHANNEL, KID, key).assertion(NOW, token_exp=86400)
    header, claims = decode_jws(token, key.cryptography_key.public_key())
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KID}
    assert claims == {
        "iss": CHANNEL,
        "sub": CHANNEL,
        "aud": "https://api.line.me/",
        "exp": 1_700_000_000 + 1800,
        "token_exp": 86400,
    }
    assert AUDIENCE == "https://api.line.me/"
    assert isinstance(claims["exp"], int) and isinstance(claims["token_exp"], int)


def test_assertion_without_token_exp_omits_the_claim(key: PrivateKey) -> None:
    token = AssertionSigner(CHANNEL, KID, key).assertion(NOW, lifetime=60)
    _, claims = decode_jws(token, key.cryptography_key.public_key())
    assert "token_exp" not in claims
    assert claims["exp"] == 1_700_000_060


def test_assertion_does_not_verify_with_another_key(key: PrivateKey, other_key: PrivateKey) -> None:
    token = AssertionSigner(CHANNEL, KID, key).assertion(NOW)
    with pytest.raises(InvalidSignature):
        decode_jws(token, other_key.cryptography_key.public_key())


def test_tampered_assertion_does_not_verify(key: PrivateKey) -> None:
    header, _, signature = AssertionSigner(CHANNEL, KID, key).assertion(NOW).split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps({"iss": "999", "sub": "999", "aud": AUDIENCE, "exp": 1}).encode()
    )
    with pytest.raises(InvalidSignature):
        decode_jws(f"{header}.{forged.rstrip(b'=').decode()}.{signature}", key.cryptography_key.public_key())


@pytest.mark.parametrize("token_exp", [1, 2_592_000])
def test_token_exp_bounds_are_accepted(key: PrivateKey, token_exp: int) -> None:
    token = AssertionSigner(CHANNEL, KID, key).assertion(NOW, token_exp=token_exp, lifetime=1)
    _, claims = decode_jws(token, key.cryptography_key.public_key())
    assert claims["token_exp"] == token_exp
    assert claims["exp"] == 1_700_000_001


@pytest.mark.parametrize(
    ("kwargs", "prop"),
    [
        ({"token_exp": 0}, "token_exp"),
        ({"token_exp": 2_592_001}, "token_exp"),
        ({"token_exp": -5}, "token_exp"),
        ({"token_exp": 3600.0}, "token_exp"),
        ({"token_exp": True}, "token_exp"),
        ({"token_exp": "3600"}, "token_exp"),
        ({"lifetime": 0}, "lifetime"),
        ({"lifetime": 1801}, "lifetime"),
        ({"lifetime": 60.5}, "lifetime"),
        ({"now": float("nan")}, "now"),
        ({"now": float("inf")}, "now"),
        ({"now": -1}, "now"),
        ({"now": "1700000000"}, "now"),
    ],
)
def test_bad_assertion_arguments_are_validation_errors(
    key: PrivateKey, kwargs: dict[str, Any], prop: str
) -> None:
    signer = AssertionSigner(CHANNEL, KID, key)
    args: dict[str, Any] = {"now": NOW, **kwargs}
    with pytest.raises(ValidationError) as caught:
        signer.assertion(**args)
    assert caught.value.property == prop


@pytest.mark.parametrize(
    ("channel_id", "kid", "expected"),
    [
        ("", KID, "channel id"),
        ("123 456", KID, "channel id"),
        (1234567890, KID, "channel id"),
        (CHANNEL, "", "kid"),
        (CHANNEL, " abc", "kid"),
        (CHANNEL, None, "kid"),
    ],
)
def test_bad_signer_configuration(key: PrivateKey, channel_id: Any, kid: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        AssertionSigner(channel_id, kid, key)


def test_signer_needs_a_private_key_wrapper() -> None:
    with pytest.raises(ConfigurationError, match="PrivateKey"):
        AssertionSigner(CHANNEL, KID, rsa_1024())  # type: ignore[arg-type]


def test_signer_repr_shows_only_channel_and_kid(key: PrivateKey) -> None:
    signer = AssertionSigner(CHANNEL, KID, key)
    assert repr(signer) == f"AssertionSigner(channel_id={CHANNEL!r}, kid={KID!r})"
    assert (signer.channel_id, signer.kid) == (CHANNEL, KID)
    for secret in key_material(key):
        assert secret not in repr(signer)


def test_assertions_from_a_loaded_key_verify_against_the_published_public_jwk(
    key: PrivateKey, tmp_path: Path
) -> None:
    loaded = load_private_key(key.write_private_jwk(tmp_path / "k.json"), cache=False)
    jwk = key.public_jwk()
    public = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"])).public_key()
    _, claims = decode_jws(AssertionSigner(CHANNEL, KID, loaded).assertion(NOW, 3600), public)
    assert claims["token_exp"] == 3600


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_failed_write_leaves_no_partial_key_behind(
    key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    path = tmp_path / "key.json"
    if overwrite:
        path.write_text("old key")

    def full_disk(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ConfigurationError, match="No space left on device"):
        key.write_private_jwk(path, overwrite=overwrite)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == (["key.json"] if overwrite else [])
    if overwrite:
        assert path.read_text() == "old key"
