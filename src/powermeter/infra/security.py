"""API keys (format, checksum, keyed hash), password hashing and the Ed25519 signer.

Key format: ``pm_live_`` + 37 random base62 characters + 6 base62 characters of CRC32 over the
random part (zero-padded), like GitHub's and Polar's tokens. The checksum lets a mistyped or made-up
key be refused without touching the database. Keys are stored only as HMAC-SHA256(secret, key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import zlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_PREFIX = "pm_live_"
RANDOM_LEN = 37
CHECKSUM_LEN = 6
KEY_LEN = len(KEY_PREFIX) + RANDOM_LEN + CHECKSUM_LEN
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_SET = frozenset(BASE62)


def _b62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def checksum(random_part: str) -> str:
    return _b62(zlib.crc32(random_part.encode("ascii")) & 0xFFFFFFFF, CHECKSUM_LEN)


def generate_api_key() -> str:
    rnd = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LEN))
    return KEY_PREFIX + rnd + checksum(rnd)


def key_is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and CRC32 checksum: no database needed."""
    if len(key) != KEY_LEN or not key.startswith(KEY_PREFIX):
        return False
    body = key[len(KEY_PREFIX) :]
    if not _B62_SET.issuperset(body):
        return False
    return hmac.compare_digest(checksum(body[:RANDOM_LEN]), body[RANDOM_LEN:])


def hash_api_key(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def mask_key(last4: str) -> str:
    return f"{KEY_PREFIX}...{last4}"


# --- passwords (dashboard) -------------------------------------------------------------------


def hash_password(password: str) -> str:
    from argon2 import PasswordHasher

    return str(PasswordHasher().hash(password))


def verify_password(stored: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(PasswordHasher().verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


# --- signing -----------------------------------------------------------------------------------


class Signer:
    """The server's Ed25519 key, derived from the secret key with HKDF so every worker and
    machine sharing the secret signs with the same key."""

    def __init__(self, secret: str) -> None:
        seed = HKDF(algorithm=SHA256(), length=32, salt=b"powermeter", info=b"ed25519 signing key v1").derive(
            secret.encode()
        )
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: Ed25519PublicKey = self._key.public_key()
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key_raw = raw
        self.key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
        # Ed25519 signatures are deterministic (RFC 8032): libsodium's (PyNaCl) are byte for byte
        # OpenSSL's, in ~16 µs instead of ~26 µs on this machine; one per receipt tree and inference record
        self._sodium_sk: bytes | None = None
        try:
            from nacl.bindings import crypto_sign_seed_keypair

            pk, sk = crypto_sign_seed_keypair(seed)
            if pk == raw:
                self._sodium_sk = sk
        except ImportError:  # pragma: no cover - pynacl is a dependency; cryptography signs alone
            pass

    def sign(self, message: bytes) -> bytes:
        sk = self._sodium_sk
        if sk is not None:
            from nacl.bindings import crypto_sign

            return bytes(crypto_sign(message, sk)[:64])
        return self._key.sign(message)

    def sign_with_openssl(self, message: bytes) -> bytes:
        """The same signature by OpenSSL (cryptography); the tests hold both equal."""
        return self._key.sign(message)

    def sign_b64(self, message: bytes) -> str:
        return base64.b64encode(self.sign(message)).decode()

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def verify_signature(public_key_pem: str | bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
