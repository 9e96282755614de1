"""The public names are a promise: this pins them, so a change to them is deliberate."""

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


def test_the_library_does_not_import_the_cli_the_service_or_the_emulator() -> None:
    import subprocess
    import sys

    code = (
        "import sys, linepush, linepush.client, linepush.tokens, linepush.store; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "(['linepush', 'cli'], ['linepush', 'service'], ['linepush', 'emulator'])]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
