"""The aiohttp transport keeps each request's deadline itself, on timers shared by the requests whose
deadlines fall in one 10 ms step: what a caller sees must be what aiohttp's own timeout gave, on real
loopback servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from linepush.errors import OutcomeUnknownError
from linepush.transport import AiohttpTransport, Timeouts
from linepush.transport._aiohttp import _Deadlines
from tests.transport.conftest import Server, answer, named, push, retry_key

QUICK = Timeouts(connect=2.0, read=2.0)


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    """Answers every request on the connection, except one with the retry key "hang": it gets no answer."""
    while True:
        head = await server.read_request(reader)
        if retry_key(head) == b"hang":
            await server.hold()
        writer.write(answer(named(head)))
        await writer.drain()


def count_call_at(loop: asyncio.AbstractEventLoop) -> list[float]:
    asked: list[float] = []
    call_at = loop.call_at

    def counted(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        asked.append(when)
        return call_at(when, *args, **kwargs)

    loop.call_at = counted  # type: ignore[method-assign,assignment]
    return asked


async def test_requests_started_together_share_one_deadline_timer(serve: Any) -> None:
    server = await serve()
    transport = AiohttpTransport(server.url, timeouts=QUICK)
    try:
        # The connections are made first: each new one has a timer for its set-up (aiohttp's).
        await asyncio.gather(*(transport.send(push(f"w{i}"), "tok") for i in range(50)))
        timers = count_call_at(asyncio.get_running_loop())
        answers = await asyncio.gather(*(transport.send(push(f"k{i}"), "tok") for i in range(50)))
        assert [a.json() for a in answers] == [{"key": f"k{i}"} for i in range(50)]
        # A timer per request would be 50 (aiohttp's own total timeout); started within one step (or two,
        # across a step's end), they share theirs.
        assert 1 <= len(timers) <= 2, timers
    finally:
        await transport.aclose()


async def test_a_request_past_its_deadline_times_out_and_leaves_its_task_as_it_was(serve: Any) -> None:
    server = await serve(hang)
    transport = AiohttpTransport(server.url, timeouts=Timeouts(connect=0.1, read=0.2))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(OutcomeUnknownError, match="timed out"):
            await transport.send(push("hang"), "tok")
        # Never early; late by at most a step (10 ms), and the loop's own lag on a busy machine.
        assert loop.time() - started >= 0.3
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        # Nothing of the timeout is left to hit the task later.
        await asyncio.sleep(0.05)
        assert (await transport.send(push("next"), "tok")).json() == {"key": "next"}
    finally:
        await transport.aclose()


async def test_a_deadline_nearer_than_the_transports_own_is_kept(serve: Any) -> None:
    server = await serve(hang)
    transport = AiohttpTransport(server.url, timeouts=Timeouts(connect=5.0, read=30.0))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(OutcomeUnknownError, match="timed out"):
            await transport.send(push("hang"), "tok", timeout=0.2)
        assert 0.2 <= loop.time() - started < 5.0
    finally:
        await transport.aclose()


async def test_a_caller_that_cancels_gets_its_cancellation_not_a_timeout(serve: Any) -> None:
    server = await serve(hang)
    transport = AiohttpTransport(server.url, timeouts=Timeouts(connect=0.1, read=0.2))
    try:
        hanging = asyncio.create_task(transport.send(push("hang"), "tok"))
        await server.got_request.wait()
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        # The deadline of the cancelled request passes and finds nothing to cancel.
        await asyncio.sleep(0.4)
        assert (await transport.send(push("next"), "tok")).json() == {"key": "next"}
    finally:
        await transport.aclose()


async def test_a_caller_that_cancels_as_the_deadline_passes_still_gets_its_cancellation(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve(hang)
    transport = AiohttpTransport(server.url, timeouts=Timeouts(connect=0.1, read=0.2))
    expire = _Deadlines._expire
    callers: list[asyncio.Task[Any]] = []

    def and_the_caller_too(self: _Deadlines, step: int) -> None:
        expire(self, step)
        for task in callers:
            task.cancel()  # in the same turn of the loop as the deadline

    monkeypatch.setattr(_Deadlines, "_expire", and_the_caller_too)
    try:
        hanging = asyncio.create_task(transport.send(push("hang"), "tok"))
        callers.append(hanging)
        with pytest.raises(asyncio.CancelledError):
            await hanging
    finally:
        await transport.aclose()
