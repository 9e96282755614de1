"""Message models and the local validation of everything a send carries (messages, recipients, units).

Every send is checked here once, before any request: what LINE would refuse raises
:class:`~linepush.errors.ValidationError` naming the field in LINE's notation (``messages[2].text``).
The limits and LINE's ways of counting are in ``_limits``, the typed models in ``_models``, the validator in
``_validate`` and recipient ids in ``_recipients``.
"""

from __future__ import annotations

from linepush.messages import _limits, _models

# Every limit, and LINE's ways of counting text, by name.
from linepush.messages._limits import *  # noqa: F403

# The typed models, and what a send takes as one message.
from linepush.messages._models import *  # noqa: F403
from linepush.messages._recipients import validate_custom_aggregation_units, validate_to, validate_user_ids
from linepush.messages._validate import normalize_messages

__all__ = [
    "normalize_messages",
    "validate_custom_aggregation_units",
    "validate_to",
    "validate_user_ids",
]
__all__ += _limits.__all__
__all__ += _models.__all__
