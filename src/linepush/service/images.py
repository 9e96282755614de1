"""Images uploaded to the gateway (LINE Notify's ``imageFile``): checked, kept in a directory, served back.

LINE fetches an image message's picture from an HTTPS URL, so an uploaded file must be served somewhere LINE
can reach: the gateway serves it under ``/images/<random name>`` and names it by the public base URL it was
configured with. The random name (24 bytes) is the only access check: it is as hard to guess as a token.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from linepush._secret import masked_url
from linepush.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_IMAGE_BYTES", "IMAGE_NAME", "ImageStore", "StoredImage", "UploadRefused", "sniff"]

#: LINE takes a preview image of at most 1 MB; the upload is served as both the preview and the full image
#: (the gateway does not resize), so that is the default limit.
DEFAULT_MAX_IMAGE_BYTES: Final = 1024 * 1024
#: LINE's limit for an image message's full-size image.
LINE_MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
IMAGE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{32}\.(?:png|jpg)")
_MEDIA_TYPES: Final = {".png": "image/png", ".jpg": "image/jpeg"}


class UploadRefused(ValueError):
    """The upload is not an image the gateway takes; the text says why (for the 400 answer)."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    name: str
    url: str


def sniff(data: bytes) -> str | None:
    """The file extension for PNG or JPEG content (by its first bytes), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    return None


def check_public_url(public_url: str) -> None:
    """Refuse a public URL that cannot start the image URLs sent to LINE. Those URLs are pushed as they are,
    and every member of the chat can read them: a password in one would be handed to all of them."""
    shown = masked_url(public_url)
    try:
        parts = urlsplit(public_url)
        parts.port  # noqa: B018 - a port out of range or not a number raises here
    except ValueError as exc:
        raise ConfigurationError(f"the gateway's public URL {shown!r} is malformed: {exc}") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigurationError(
            "the gateway's public URL must be an HTTPS URL (LINE fetches images only over HTTPS), "
            f"not {shown!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"the gateway's public URL {shown!r} must not hold credentials: it starts the image URLs sent to "
            "LINE, which everyone in the chat can read"
        )
    if parts.query or parts.fragment or public_url.endswith(("?", "#")):
        raise ConfigurationError(
            f"the gateway's public URL {shown!r} must not have a query or a fragment: /images/NAME follows it"
        )


class ImageStore:
    """Uploaded images in ``directory``, served at ``public_url + "/images/" + name``."""

    def __init__(
        self, directory: str | os.PathLike[str], public_url: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    ) -> None:
        check_public_url(public_url)
        if not 1 <= max_bytes <= LINE_MAX_IMAGE_BYTES:
            raise ConfigurationError(f"the image size limit must be 1 to {LINE_MAX_IMAGE_BYTES} bytes")
        self.directory = Path(directory).expanduser()
        # Made at the first upload; a file in its place would refuse every upload with a 503.
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigurationError(
                f"--image-dir {self.directory} is not a directory; name a directory for uploaded images"
            )
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes

    def check(self, data: bytes) -> str:
        """The extension of an acceptable upload, or :class:`UploadRefused`."""
        if not data:
            raise UploadRefused("imageFile: must not be empty")
        if len(data) > self.max_bytes:
            raise UploadRefused(f"imageFile: must be at most {self.max_bytes} bytes")
        extension = sniff(data)
        if extension is None:
            raise UploadRefused("imageFile: must be a PNG or JPEG image")
        return extension

    def save(self, data: bytes, now: float) -> StoredImage:
        """Keep an upload under a fresh random name, dated ``now`` (blocking: call it in a thread).

        The file is on disk (fsynced) before this returns: the message that names it is queued afterwards
        and must never point at a file a crash lost.
        """
        extension = self.check(data)
        name = secrets.token_urlsafe(24) + extension
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.directory / name
        partial = self.directory / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                # Dated by the caller's clock, which the retention sweep measures ages with.
                os.utime(out.fileno(), (now, now))
                os.fsync(out.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredImage(name, f"{self.public_url}/images/{name}")

    def discard(self, name: str) -> None:
        """Remove an image whose message was never queued (blocking)."""
        if IMAGE_NAME.fullmatch(name):
            (self.directory / name).unlink(missing_ok=True)

    def purge(self, older_than: float, now: float) -> int:
        """Delete served images saved more than ``older_than`` seconds before ``now`` (blocking); returns how
        many. LINE fetches an image when a chat shows it, so a purged image no longer shows in old messages.
        """
        if not self.directory.is_dir():
            return 0
        removed = 0
        for entry in self.directory.iterdir():
            if IMAGE_NAME.fullmatch(entry.name) is None:
                continue
            try:
                if entry.stat().st_mtime < now - older_than:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:  # another process purged it first
                continue
        return removed

    def path(self, name: str) -> tuple[Path, str] | None:
        """The file and media type of a served name, or None for a name this store never gives out."""
        if IMAGE_NAME.fullmatch(name) is None:
            return None
        return self.directory / name, _MEDIA_TYPES[name[-4:]]
