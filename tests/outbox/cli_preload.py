"""Imported by the crash test's fork server, so every worker it forks starts with the CLI already loaded."""

from __future__ import annotations

import os
import sys

from linepush.cli import _register, main

_register()


def run_cli(env: dict[str, str], argv: list[str]) -> None:
    """Run ``linepush *argv`` in this (forked) process with ``env`` added to the environment."""
    os.environ.update(env)
    sys.argv = ["linepush", *argv]
    main()
