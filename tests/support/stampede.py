"""A child process of the token stampede tests: one manager, one get_token at the given moment."""

from __future__ import annotations

from typing import Any


def child(channel_args: dict[str, Any], store_url: str, api_base: str, go: Any, ready: Any, out: Any) -> None:
    from linepush.client import LineClient
    from linepush.config import Channel
    from linepush.tokens import TokenManager

    channel = Channel(**channel_args)
    client = LineClient(channel, api_base=api_base)
    manager = TokenManager(channel, store_url, client=client, refresh_window=900)
    ready.put(1)
    go.wait(30)
    try:
        out.put(("ok", manager.get_token()))
    except Exception as exc:  # reported to the parent, which fails the test with it
        out.put(("error", repr(exc)))
    manager.join_background(30)
    manager.close()
    client.close()


class Children:
    """``count`` spawned processes, each with its own TokenManager on ``store_url``, waiting for ``go``."""

    def __init__(self, channel: Any, store_url: str, api_base: str, count: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.go, ready, self._out = ctx.Event(), ctx.Queue(), ctx.Queue()
        args = {
            "channel_id": channel.channel_id,
            "channel_secret": channel.require_secret().reveal(),
            "assertion_key_file": str(channel.assertion_key_file),
            "assertion_kid": channel.assertion_kid,
        }
        self._procs = [
            ctx.Process(target=child, args=(args, store_url, api_base, self.go, ready, self._out))
            for _ in range(count)
        ]
        for p in self._procs:
            p.start()
        for _ in self._procs:
            ready.get(timeout=60)

    def answers(self) -> list[str]:
        """Every child's token (after ``go`` was set); fails the test on a child's error or exit code."""
        answers: list[str] = []
        for _ in self._procs:
            status, value = self._out.get(timeout=60)
            assert status == "ok", value
            answers.append(value)
        for p in self._procs:
            p.join(30)
            assert p.exitcode == 0
        return answers
