"""linepush: send LINE messages without thinking about channel access tokens, and without losing a message."""

from linepush._version import __version__

__all__ = ["__version__"]
