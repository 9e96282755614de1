"""Typed message models: each builds LINE's JSON object for one message type (validated later, with the
rest of a send, by :func:`~linepush.messages.normalize_messages`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from linepush.messages._message import Message, _plain, _put

__all__ = [
    "AudioMessage",
    "CouponMessage",
    "FlexMessage",
    "ImageMessage",
    "ImagemapMessage",
    "LocationMessage",
    "StickerMessage",
    "TemplateMessage",
    "TextMessage",
    "TextV2Message",
    "VideoMessage",
]


@dataclass(frozen=True, slots=True)
class TextMessage(Message):
    """A text message; ``emojis`` are LINE emoji objects placed at ``$`` characters of ``text``."""

    type: ClassVar[str] = "text"
    text: str
    emojis: Sequence[Mapping[str, Any]] | None = None
    quote_token: str | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["text"] = self.text
        if self.emojis is not None:
            data["emojis"] = [_plain(e) for e in self.emojis]
        _put(data, "quoteToken", self.quote_token)


@dataclass(frozen=True, slots=True)
class TextV2Message(Message):
    """A text message v2: ``{key}`` placeholders in ``text`` replaced by mentions or emoji."""

    type: ClassVar[str] = "textV2"
    text: str
    substitution: Mapping[str, Mapping[str, Any]] | None = None
    quote_token: str | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["text"] = self.text
        if self.substitution is not None:
            data["substitution"] = {k: _plain(v) for k, v in self.substitution.items()}
        _put(data, "quoteToken", self.quote_token)


@dataclass(frozen=True, slots=True)
class StickerMessage(Message):
    """A sticker, by package and sticker id (strings, as LINE expects)."""

    type: ClassVar[str] = "sticker"
    package_id: str
    sticker_id: str
    quote_token: str | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["packageId"] = self.package_id
        data["stickerId"] = self.sticker_id
        _put(data, "quoteToken", self.quote_token)


@dataclass(frozen=True, slots=True)
class ImageMessage(Message):
    """An image, by HTTPS URLs of the original and the preview."""

    type: ClassVar[str] = "image"
    original_content_url: str
    preview_image_url: str

    def _fill(self, data: dict[str, Any]) -> None:
        data["originalContentUrl"] = self.original_content_url
        data["previewImageUrl"] = self.preview_image_url


@dataclass(frozen=True, slots=True)
class VideoMessage(Message):
    """A video (mp4), by HTTPS URLs of the video and its preview image."""

    type: ClassVar[str] = "video"
    original_content_url: str
    preview_image_url: str
    tracking_id: str | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["originalContentUrl"] = self.original_content_url
        data["previewImageUrl"] = self.preview_image_url
        _put(data, "trackingId", self.tracking_id)


@dataclass(frozen=True, slots=True)
class AudioMessage(Message):
    """An audio file (mp3 or m4a) by HTTPS URL; ``duration`` in milliseconds."""

    type: ClassVar[str] = "audio"
    original_content_url: str
    duration: int

    def _fill(self, data: dict[str, Any]) -> None:
        data["originalContentUrl"] = self.original_content_url
        data["duration"] = self.duration


@dataclass(frozen=True, slots=True)
class LocationMessage(Message):
    """A location pin."""

    type: ClassVar[str] = "location"
    title: str
    address: str
    latitude: float
    longitude: float

    def _fill(self, data: dict[str, Any]) -> None:
        data["title"] = self.title
        data["address"] = self.address
        data["latitude"] = self.latitude
        data["longitude"] = self.longitude


@dataclass(frozen=True, slots=True)
class FlexMessage(Message):
    """A Flex Message; ``contents`` is a bubble or carousel container in LINE's JSON shape."""

    type: ClassVar[str] = "flex"
    alt_text: str
    contents: Mapping[str, Any]

    def _fill(self, data: dict[str, Any]) -> None:
        data["altText"] = self.alt_text
        data["contents"] = _plain(self.contents)


@dataclass(frozen=True, slots=True)
class TemplateMessage(Message):
    """A template message; ``template`` is a buttons, confirm, carousel or image_carousel object."""

    type: ClassVar[str] = "template"
    alt_text: str
    template: Mapping[str, Any]

    def _fill(self, data: dict[str, Any]) -> None:
        data["altText"] = self.alt_text
        data["template"] = _plain(self.template)


@dataclass(frozen=True, slots=True)
class ImagemapMessage(Message):
    """An imagemap: an image at ``base_url`` with tappable areas (``actions``) and an optional video."""

    type: ClassVar[str] = "imagemap"
    base_url: str
    alt_text: str
    base_size: Mapping[str, Any]
    actions: Sequence[Mapping[str, Any]]
    video: Mapping[str, Any] | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["baseUrl"] = self.base_url
        data["altText"] = self.alt_text
        data["baseSize"] = _plain(self.base_size)
        data["actions"] = [_plain(a) for a in self.actions]
        if self.video is not None:
            data["video"] = _plain(self.video)


@dataclass(frozen=True, slots=True)
class CouponMessage(Message):
    """A coupon created in LINE Official Account Manager, by id."""

    type: ClassVar[str] = "coupon"
    coupon_id: str
    delivery_tag: str | None = None

    def _fill(self, data: dict[str, Any]) -> None:
        data["couponId"] = self.coupon_id
        _put(data, "deliveryTag", self.delivery_tag)
