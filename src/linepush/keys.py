"""RSA assertion-signing keys: generate, read and write them (JWK or PEM), and sign LINE's client assertion.

Loading a key costs ≈ 40 ms (cryptography checks it), signing ≈ 0.5 ms: load once per process, sign per call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from linepush.errors import ConfigurationError, ValidationError

__all__ = [
    "AUDIENCE",
    "MAX_ASSERTION_LIFETIME",
    "MAX_TOKEN_EXP",
    "MIN_KEY_BITS",
    "AssertionSigner",
    "PrivateKey",
    "generate_key_pair",
    "load_private_key",
    "parse_private_key",
]

#: The ``aud`` claim LINE requires, trailing slash included.
AUDIENCE: Final = "https://api.line.me/"
#: LINE refuses an assertion whose ``exp`` is more than 30 minutes after its creation.
MAX_ASSERTION_LIFETIME: Final = 30 * 60
#: The longest access-token lifetime (``token_exp``) LINE grants: 30 days.
MAX_TOKEN_EXP: Final = 30 * 24 * 3600
#: LINE asks for 2048-bit keys; longer ones are accepted here since RS256 works with them too.
MIN_KEY_BITS: Final = 2048
PUBLIC_EXPONENT: Final = 65537

# A key file is a few kilobytes; anything far larger is not a key and is not read into memory.
_MAX_KEY_FILE_BYTES: Final = 1 << 20
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
# Channel ids and kids go into the JWT verbatim; whitespace or control characters there are a pasting mistake.
_PLAIN_TOKEN: Final = re.compile(r"[\x21-\x7e]+")


class PrivateKey:
    """An RSA private key used to sign client assertions. Its repr shows only size and public thumbprint."""

    __slots__ = ("_key", "_public_jwk")

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"an assertion key must be an RSA private key, not {_kind_of(key)}")
        if key.key_size < MIN_KEY_BITS:
            raise ConfigurationError(
                f"the assertion key is RSA-{key.key_size}; LINE needs at least {MIN_KEY_BITS} bits"
            )
        self._key = key
        self._public_jwk: dict[str, str] | None = None

    @property
    def key_size(self) -> int:
        return self._key.key_size

    @property
    def cryptography_key(self) -> rsa.RSAPrivateKey:
        """The underlying ``cryptography`` key, for callers that sign something other than an assertion."""
        return self._key

    def public_jwk(self) -> dict[str, str]:
        """The public key as the LINE Developers Console takes it: kty, alg, use, e, n and no ``kid``."""
        if self._public_jwk is None:
            numbers = self._key.public_key().public_numbers()
            self._public_jwk = {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "e": _b64_uint(numbers.e),
                "n": _b64_uint(numbers.n),
            }
        return dict(self._public_jwk)

    def private_jwk(self) -> dict[str, str]:
        """The full private key as an RFC 7517 JWK. Handle the result as the secret it is."""
        numbers = self._key.private_numbers()
        jwk = self.public_jwk()
        jwk.update(
            d=_b64_uint(numbers.d),
            p=_b64_uint(numbers.p),
            q=_b64_uint(numbers.q),
            dp=_b64_uint(numbers.dmp1),
            dq=_b64_uint(numbers.dmq1),
            qi=_b64_uint(numbers.iqmp),
        )
        return jwk

    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key: a safe name for the key in logs and listings."""
        jwk = self.public_jwk()
        canonical = json.dumps(
            {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
        )
        return _b64(hashlib.sha256(canonical.encode()).digest())

    def sign(self, data: bytes) -> bytes:
        """An RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of ``data``."""
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def write_private_jwk(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the private JWK to ``path``, readable and writable by its owner only (mode 0600).

        The file is created atomically with that mode, so the key is never readable by others, not even for
        a moment. An existing file is refused unless ``overwrite`` is true, in which case it is replaced
        atomically (a crash leaves either the old or the new key, never half of one).
        """
        target = Path(path)
        data = (json.dumps(self.private_jwk(), indent=2) + "\n").encode()
        if overwrite:
            _replace_private_file(target, data)
        else:
            _create_private_file(target, data)
        return target

    def __repr__(self) -> str:
        return f"PrivateKey(RSA-{self.key_size}, thumbprint={self.thumbprint()!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would copy the key into queues and caches where nobody expects a secret.
        raise TypeError("a PrivateKey cannot be pickled; load it from its file in each process")


def generate_key_pair() -> PrivateKey:
    """A new RSA-2048 key pair (e = 65537). Takes tens of milliseconds: never on a request path."""
    return PrivateKey(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=MIN_KEY_BITS))


_cache_lock = threading.Lock()
# (st_dev, st_ino) -> (st_size, st_mtime_ns, st_ctime_ns, key): a rewritten file is loaded again.
_cache: dict[tuple[int, int], tuple[int, int, int, PrivateKey]] = {}


def load_private_key(path: str | os.PathLike[str], *, cache: bool = True) -> PrivateKey:
    """Read an RSA private key from a JWK (JSON) or PEM (PKCS#1 or PKCS#8, unencrypted) file.

    With ``cache`` (the default) each file is parsed once per process and the same :class:`PrivateKey` is
    returned again until the file changes, because parsing a key costs far more than using it.
    Raises :class:`~linepush.errors.ConfigurationError` saying what is wrong,
    never with key material in the text.
    """
    target = Path(path)
    name = str(target)
    # O_NONBLOCK: a FIFO given by mistake must give an error, not hang the process waiting for a writer.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise ConfigurationError(f"assertion key file {name} does not exist") from None
    except IsADirectoryError:
        raise ConfigurationError(f"assertion key file {name} is a directory, not a key file") from None
    except PermissionError:
        raise ConfigurationError(f"assertion key file {name} cannot be read: permission denied") from None
    except OSError as exc:
        raise ConfigurationError(f"assertion key file {name} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigurationError(f"assertion key file {name} is a directory, not a key file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"assertion key file {name} is not a regular file")
        ident = (st.st_dev, st.st_ino)
        version = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if cache:
            with _cache_lock:
                hit = _cache.get(ident)
            if hit is not None and hit[:3] == version:
                return hit[3]
        if st.st_size > _MAX_KEY_FILE_BYTES:
            raise ConfigurationError(f"assertion key file {name} is too large to be a key")
        try:
            with os.fdopen(os.dup(fd), "rb") as stream:
                data = stream.read(_MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigurationError(f"assertion key file {name} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    key = parse_private_key(data, source=f"assertion key file {name}")
    if cache:
        with _cache_lock:
            _cache[ident] = (*version, key)
    return key


def parse_private_key(data: bytes | str, *, source: str = "the assertion key") -> PrivateKey:
    """Parse an RSA private key given as JWK JSON (a single key or a set of exactly one) or as PEM.

    ``source`` names where the data came from, for error texts.
    """
    if isinstance(data, bytes):
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise ConfigurationError(f"{source} is too large to be a key")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"{source} is neither a JWK nor a PEM key (it is not text; DER keys are not supported)"
            ) from None
    else:
        text = data
    text = text.lstrip("\ufeff").strip()
    if text.startswith("{"):
        return _from_jwk_text(text, source)
    if text.startswith("-----BEGIN"):
        return _from_pem(text, source)
    raise ConfigurationError(
        f"{source} is neither a JWK (JSON object) nor a PEM key (-----BEGIN ... PRIVATE KEY-----)"
    )


class AssertionSigner:
    """Signs the JWT client assertion LINE takes for v2.1 and stateless tokens (FACTS.md §2).

    ``channel_id`` is the channel's id (the ``iss`` and ``sub``), ``kid`` the key id the LINE Developers
    Console showed when the public key was registered.
    """

    __slots__ = ("_channel_id", "_key", "_kid")

    def __init__(self, channel_id: str, kid: str, key: PrivateKey) -> None:
        if not isinstance(channel_id, str) or not _PLAIN_TOKEN.fullmatch(channel_id):
            raise ConfigurationError(
                "the channel id must be a non-empty string without spaces (the channel's id from the console)"
            )
        if not isinstance(kid, str) or not _PLAIN_TOKEN.fullmatch(kid):
            raise ConfigurationError(
                "the assertion key id (kid) must be a non-empty string without spaces "
                "(the kid the console showed when the public key was registered)"
            )
        if not isinstance(key, PrivateKey):
            raise ConfigurationError("the assertion key must be a linepush.keys.PrivateKey")
        self._channel_id = channel_id
        self._kid = kid
        self._key = key

    @property
    def channel_id(self) -> str:
        return self._channel_id

    @property
    def kid(self) -> str:
        return self._kid

    def assertion(
        self, now: float, token_exp: int | None = None, lifetime: int = MAX_ASSERTION_LIFETIME
    ) -> str:
        """A compact RS256 JWS: header alg/typ/kid, claims iss, sub, aud, exp and (when given) token_exp.

        ``now`` is the current UNIX time (injected, so tests and the emulator's clock agree), ``lifetime``
        the seconds until the assertion itself expires (1..1800), ``token_exp`` the requested access-token
        lifetime in seconds (1..2592000; only v2.1 tokens use it).
        """
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now) or now < 0:
            raise ValidationError("must be a finite, non-negative UNIX time in seconds", property="now")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int):
            raise ValidationError("must be an integer number of seconds", property="lifetime")
        if not 1 <= lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValidationError(
                f"must be between 1 and {MAX_ASSERTION_LIFETIME} seconds (LINE allows at most 30 minutes)",
                property="lifetime",
            )
        claims: dict[str, Any] = {
            "iss": self._channel_id,
            "sub": self._channel_id,
            "aud": AUDIENCE,
            "exp": int(now) + lifetime,
        }
        if token_exp is not None:
            if isinstance(token_exp, bool) or not isinstance(token_exp, int):
                raise ValidationError("must be an integer number of seconds", property="token_exp")
            if not 1 <= token_exp <= MAX_TOKEN_EXP:
                raise ValidationError(
                    f"must be between 1 and {MAX_TOKEN_EXP} seconds (LINE allows at most 30 days)",
                    property="token_exp",
                )
            claims["token_exp"] = token_exp
        return jwt.encode(
            claims,
            self._key.cryptography_key,
            algorithm="RS256",
            headers={"alg": "RS256", "typ": "JWT", "kid": self._kid},
        )

    def __repr__(self) -> str:
        return f"AssertionSigner(channel_id={self._channel_id!r}, kid={self._kid!r})"


# --- parsing ---


def _from_jwk_text(text: str, source: str) -> PrivateKey:
    try:
        parsed = json.loads(text)
    except ValueError:
        # The JSON error is not chained: the decoder keeps the whole document on the exception.
        raise ConfigurationError(f"{source} looks like JSON but cannot be parsed as a JWK") from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{source} is JSON but not a JWK object")
    if "keys" in parsed and "kty" not in parsed:
        keys = parsed["keys"]
        if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
            raise ConfigurationError(f"{source} is a JWK Set; it must hold exactly one private key")
        parsed = keys[0]
    return _from_jwk(parsed, source)


def _from_jwk(jwk: Mapping[str, Any], source: str) -> PrivateKey:
    kty = jwk.get("kty")
    if kty is None:
        raise ConfigurationError(f"{source} is not a JWK: it has no 'kty' member")
    if kty != "RSA":
        raise ConfigurationError(f"{source} is a JWK of type {_safe_name(kty)}; LINE needs an RSA key")
    alg = jwk.get("alg")
    if alg is not None and alg != "RS256":
        raise ConfigurationError(f"{source} is marked for {_safe_name(alg)}; LINE needs an RS256 key")
    if "d" not in jwk:
        raise ConfigurationError(
            f"{source} is a public key; linepush needs the private key (the JWK with 'd', 'p', 'q', ...)"
        )
    n = _jwk_int(jwk, "n", source)
    e = _jwk_int(jwk, "e", source)
    d = _jwk_int(jwk, "d", source)
    try:
        if "p" in jwk or "q" in jwk:
            p = _jwk_int(jwk, "p", source)
            q = _jwk_int(jwk, "q", source)
        else:
            # RFC 7518 allows a private key of n, e and d alone; the primes can be recovered from them.
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        dp = _jwk_int(jwk, "dp", source) if "dp" in jwk else rsa.rsa_crt_dmp1(d, p)
        dq = _jwk_int(jwk, "dq", source) if "dq" in jwk else rsa.rsa_crt_dmq1(d, q)
        qi = _jwk_int(jwk, "qi", source) if "qi" in jwk else rsa.rsa_crt_iqmp(p, q)
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa.RSAPublicNumbers(e, n))
        key = numbers.private_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(
            f"{source} is not a valid RSA private key (its numbers do not fit together)"
        ) from None
    return _wrap(key, source)


def _jwk_int(jwk: Mapping[str, Any], member: str, source: str) -> int:
    value = jwk.get(member)
    if isinstance(value, str):
        value = value.rstrip("=")
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise ConfigurationError(f"{source}: JWK member '{member}' is missing or not base64url text")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{source}: JWK member '{member}' is not valid base64url") from None
    number = int.from_bytes(raw, "big")
    if number <= 0:
        raise ConfigurationError(f"{source}: JWK member '{member}' is zero")
    return number


def _from_pem(text: str, source: str) -> PrivateKey:
    first = text.splitlines()[0].strip()
    if "PUBLIC KEY" in first or "CERTIFICATE" in first:
        raise ConfigurationError(
            f"{source} holds a public key or certificate; linepush needs the private key "
            "(-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
        )
    if "OPENSSH PRIVATE KEY" in first:
        raise ConfigurationError(
            f"{source} is an OpenSSH key; convert it to PEM first (ssh-keygen -p -m PKCS8 -f FILE)"
        )
    if "ENCRYPTED" in first or "Proc-Type: 4,ENCRYPTED" in text:
        raise ConfigurationError(
            f"{source} is encrypted with a passphrase; linepush needs an unencrypted key"
        )
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise ConfigurationError(
            f"{source} is encrypted with a passphrase; linepush needs an unencrypted key"
        ) from None
    except UnsupportedAlgorithm:
        raise ConfigurationError(f"{source} is a key of an unsupported type; LINE needs an RSA key") from None
    except ValueError:
        raise ConfigurationError(f"{source} is a PEM block but not a readable private key") from None
    return _wrap(key, source)


def _wrap(key: Any, source: str) -> PrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{source} is {_kind_of(key)}; LINE needs an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise ConfigurationError(f"{source} is RSA-{key.key_size}; LINE needs at least {MIN_KEY_BITS} bits")
    return PrivateKey(key)


def _kind_of(key: object) -> str:
    kinds: tuple[tuple[type[Any], str], ...] = (
        (ec.EllipticCurvePrivateKey, "an EC key"),
        (ed25519.Ed25519PrivateKey, "an Ed25519 key"),
        (ed448.Ed448PrivateKey, "an Ed448 key"),
        (dsa.DSAPrivateKey, "a DSA key"),
        (rsa.RSAPublicKey, "an RSA public key"),
    )
    for cls, label in kinds:
        if isinstance(key, cls):
            return label
    return f"a {type(key).__name__}"


def _safe_name(value: object) -> str:
    # alg and kty are echoed to help, but only when they look like a short name, never arbitrary file content.
    if isinstance(value, str) and len(value) <= 20 and _PLAIN_TOKEN.fullmatch(value):
        return repr(value)
    return "an unrecognised value"


# --- writing ---


def _create_private_file(target: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{target} already exists; refusing to overwrite a key file (pass overwrite=True to replace it)"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create key file {target}: {exc.strerror}") from None
    try:
        _write_all(fd, data)
    except OSError as exc:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write key file {target}: {exc.strerror}") from None
    os.close(fd)


def _replace_private_file(target: Path, data: bytes) -> None:
    # mkstemp creates the file with O_EXCL and mode 0600 under an unpredictable name in the same directory,
    # so the final rename stays on one file system and is atomic.
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ConfigurationError(f"cannot create key file {target}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write key file {target}: {exc.strerror}") from None


def _write_all(fd: int, data: bytes) -> None:
    # umask can only remove bits; fchmod makes the mode exactly 0600 whatever the umask is.
    os.fchmod(fd, 0o600)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64_uint(value: int) -> str:
    return _b64(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))
