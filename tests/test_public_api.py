"""The public names are a promise: this pins them, so a change to them is deliberate.

Which module may import which (the layers, the emulator on its own, no cycles) is checked by the import
contracts in pyproject.toml (`lint-imports`, run by `make lint`), which see lazy imports too."""

from __future__ import annotations

import linepush

PUBLIC = {
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
    "UserProfile",
    "Urllib3Transport",
    "ValidationError",
    "VideoMessage",
    "Worker",
    "WorkerConfig",
    "Outbox",
    "__version__",
    "generate_key_pair",
    "load_private_key",
    "open_store",
}


def test_all_is_pinned() -> None:
    assert set(linepush.__all__) == PUBLIC
    assert len(linepush.__all__) == len(PUBLIC)


def test_every_public_name_exists() -> None:
    for name in linepush.__all__:
        assert getattr(linepush, name) is not None
