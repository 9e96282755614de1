"""The web inbox at /_emulator/: what each recipient was sent, refused sends, and buttons for users that talk
back. One static page that polls ``/_emulator/timeline``; it never shows a secret unless asked."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from linepush.emulator.http import LineJSON
from linepush.emulator.state import AdminError, EmulatorState

PREFIX = "/_emulator"
_PAGE = files("linepush.emulator").joinpath("inbox.html")


async def page(request: Request) -> Response:
    return HTMLResponse(
        _PAGE.read_text(encoding="utf-8"),
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self' 'unsafe-inline'; img-src *",
        },
    )


async def timeline(request: Request) -> Response:
    state: EmulatorState = request.app.state.emulator
    after = request.query_params.get("after", "0")
    if not after.isdigit():
        raise AdminError("'after' must be a whole number")
    return LineJSON(state.timeline(int(after[:12])), headers={"Cache-Control": "no-store"})


ROUTES = [
    Route(f"{PREFIX}/", page, methods=["GET"]),
    Route(f"{PREFIX}/timeline", timeline, methods=["GET"]),
]
