"""linepush: send LINE messages without thinking about channel access tokens, and without losing a message."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from linepush._version import __version__

if TYPE_CHECKING:
    from linepush._secret import Secret
    from linepush.api.messaging import (
        MulticastChunk,
        MulticastResult,
        PushResult,
        Quota,
        QuotaConsumption,
        SendResult,
        SentMessage,
    )
    from linepush.api.profiles import GroupSummary, UserProfile
    from linepush.api.tokens import IssuedToken, TokenInfo, TokenKind
    from linepush.client import AsyncLineClient, LineClient, MulticastError
    from linepush.config import Channel
    from linepush.errors import (
        AuthenticationError,
        BadRequestError,
        CertificateError,
        ConfigurationError,
        ConflictError,
        ConnectError,
        ErrorDetail,
        GoneError,
        LineApiError,
        LinePushError,
        MonthlyLimitError,
        NotFoundError,
        OutcomeUnknownError,
        PermissionDeniedError,
        RateLimitError,
        RequestTooLargeError,
        RetryWindowExpiredError,
        ServerError,
        TokenLimitError,
        TransportError,
        UnsupportedMediaTypeError,
        ValidationError,
    )
    from linepush.keys import AssertionSigner, PrivateKey, generate_key_pair, load_private_key
    from linepush.messages import (
        AudioMessage,
        CouponMessage,
        FlexMessage,
        ImagemapMessage,
        ImageMessage,
        LocationMessage,
        Message,
        MessageLike,
        StickerMessage,
        TemplateMessage,
        TextMessage,
        TextV2Message,
        VideoMessage,
    )
    from linepush.outbox import Outbox
    from linepush.ratelimit import Rate
    from linepush.retry import RetryPolicy
    from linepush.store import Store, open_store
    from linepush.tokens import Freshness, TokenManager
    from linepush.transport import (
        AiohttpTransport,
        ASGITransport,
        SyncASGITransport,
        Timeouts,
        Urllib3Transport,
    )
    from linepush.worker import Worker, WorkerConfig

# Names load on first use (PEP 562): `import linepush` and the command line stay fast, and a program
# that only pushes never imports what it does not use.
_WHERE: dict[str, str] = {
    "Outbox": "linepush.outbox",
    "Worker": "linepush.worker",
    "WorkerConfig": "linepush.worker",
    "Secret": "linepush._secret",
    "MulticastChunk": "linepush.api.messaging",
    "MulticastResult": "linepush.api.messaging",
    "PushResult": "linepush.api.messaging",
    "Quota": "linepush.api.messaging",
    "QuotaConsumption": "linepush.api.messaging",
    "SendResult": "linepush.api.messaging",
    "SentMessage": "linepush.api.messaging",
    "GroupSummary": "linepush.api.profiles",
    "UserProfile": "linepush.api.profiles",
    "IssuedToken": "linepush.api.tokens",
    "TokenInfo": "linepush.api.tokens",
    "TokenKind": "linepush.api.tokens",
    "AsyncLineClient": "linepush.client",
    "LineClient": "linepush.client",
    "MulticastError": "linepush.client",
    "Channel": "linepush.config",
    "AuthenticationError": "linepush.errors",
    "BadRequestError": "linepush.errors",
    "CertificateError": "linepush.errors",
    "ConfigurationError": "linepush.errors",
    "ConflictError": "linepush.errors",
    "ConnectError": "linepush.errors",
    "ErrorDetail": "linepush.errors",
    "GoneError": "linepush.errors",
    "LineApiError": "linepush.errors",
    "LinePushError": "linepush.errors",
    "MonthlyLimitError": "linepush.errors",
    "NotFoundError": "linepush.errors",
    "OutcomeUnknownError": "linepush.errors",
    "PermissionDeniedError": "linepush.errors",
    "RateLimitError": "linepush.errors",
    "RequestTooLargeError": "linepush.errors",
    "RetryWindowExpiredError": "linepush.errors",
    "ServerError": "linepush.errors",
    "TokenLimitError": "linepush.errors",
    "TransportError": "linepush.errors",
    "UnsupportedMediaTypeError": "linepush.errors",
    "ValidationError": "linepush.errors",
    "AssertionSigner": "linepush.keys",
    "PrivateKey": "linepush.keys",
    "generate_key_pair": "linepush.keys",
    "load_private_key": "linepush.keys",
    "AudioMessage": "linepush.messages",
    "CouponMessage": "linepush.messages",
    "FlexMessage": "linepush.messages",
    "ImagemapMessage": "linepush.messages",
    "ImageMessage": "linepush.messages",
    "LocationMessage": "linepush.messages",
    "Message": "linepush.messages",
    "MessageLike": "linepush.messages",
    "StickerMessage": "linepush.messages",
    "TemplateMessage": "linepush.messages",
    "TextMessage": "linepush.messages",
    "TextV2Message": "linepush.messages",
    "VideoMessage": "linepush.messages",
    "Rate": "linepush.ratelimit",
    "RetryPolicy": "linepush.retry",
    "Store": "linepush.store",
    "open_store": "linepush.store",
    "Freshness": "linepush.tokens",
    "TokenManager": "linepush.tokens",
    "AiohttpTransport": "linepush.transport",
    "ASGITransport": "linepush.transport",
    "SyncASGITransport": "linepush.transport",
    "Timeouts": "linepush.transport",
    "Urllib3Transport": "linepush.transport",
}

__all__ = [
    "ASGITransport",
    "AiohttpTransport",
    "AssertionSigner",
    "AsyncLineClient",
    "AudioMessage",
    "AuthenticationError",
    "BadRequestError",
    "CertificateError",
    "Channel",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "CouponMessage",
    "ErrorDetail",
    "FlexMessage",
    "Freshness",
    "GoneError",
    "GroupSummary",
    "ImageMessage",
    "ImagemapMessage",
    "IssuedToken",
    "LineApiError",
    "LineClient",
    "LinePushError",
    "LocationMessage",
    "Message",
    "MessageLike",
    "MonthlyLimitError",
    "MulticastChunk",
    "MulticastError",
    "MulticastResult",
    "NotFoundError",
    "Outbox",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PrivateKey",
    "PushResult",
    "Quota",
    "QuotaConsumption",
    "Rate",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryPolicy",
    "RetryWindowExpiredError",
    "Secret",
    "SendResult",
    "SentMessage",
    "ServerError",
    "StickerMessage",
    "Store",
    "SyncASGITransport",
    "TemplateMessage",
    "TextMessage",
    "TextV2Message",
    "Timeouts",
    "TokenInfo",
    "TokenKind",
    "TokenLimitError",
    "TokenManager",
    "TransportError",
    "UnsupportedMediaTypeError",
    "Urllib3Transport",
    "UserProfile",
    "ValidationError",
    "VideoMessage",
    "Worker",
    "WorkerConfig",
    "__version__",
    "generate_key_pair",
    "load_private_key",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'linepush' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
