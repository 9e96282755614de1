"""`linepush keys`: the assertion key pair whose public half is registered in the LINE Developers Console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from linepush.cli import app
from linepush.cli._command import command
from linepush.cli.invocation import Invocation, fail
from linepush.keys import generate_key_pair, load_private_key

keys_app = typer.Typer(
    name="keys",
    help="The RSA key pair LINE uses to check your token requests (v2.1 and v3 tokens).",
    no_args_is_help=True,
)
app.add_typer(keys_app)


def default_key_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("linepush", appauthor=False)) / "assertion-key.json"


NEXT_STEPS = """\
[bold]Next steps[/]
  1. In the LINE Developers Console open your Messaging API channel → Basic settings → Assertion Signing Key
     → Register a public key, and paste the public key (the JSON above).
  2. The console then shows a [bold]kid[/]. Tell linepush where the key is and its kid, in the environment:
       export LINE_CHANNEL_ID=<channel id>   LINE_ASSERTION_KEY_FILE={path}   LINE_ASSERTION_KID=<kid>
     or in linepush.toml:  assertion_key_file = "{path}"   assertion_kid = "<kid>"
  3. Check it: [bold]linepush token issue[/], then [bold]linepush send --to U… "hello"[/].
  Keep the private key file secret; anyone holding it can get tokens for your channel."""


@command(keys_app, "generate", config=False)
def generate(
    inv: Invocation,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the private key (JWK, mode 0600). Default: the user config dir.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
) -> None:
    """Make an RSA-2048 key pair: write the private key (JWK, 0600), print the public JWK to register."""
    path = (out or default_key_path()).expanduser()
    if path.is_dir():
        fail(f"{path} is a directory; name a file with --out")
    if path.exists() and not force:
        fail(
            f"{path} already exists; pass --force to replace it",
            hint="a replaced key stops working once its public key is removed from the console",
        )
    key = generate_key_pair()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        key.write_private_jwk(path, overwrite=force)
    except FileExistsError:
        fail(f"{path} already exists; pass --force to replace it")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    public = key.public_jwk()
    data = {"private_key_file": str(path.resolve()), "public_jwk": public, "thumbprint": key.thumbprint()}

    def render() -> None:
        inv.note(f"Wrote the private key to [bold]{escape(str(path))}[/] (readable by you only).")
        inv.note("Public key to register in the LINE Developers Console:")
        # The JWK alone goes to stdout so that `linepush keys generate > public.jwk` keeps just the key.
        inv.out.file.write(json.dumps(public, indent=2) + "\n")
        inv.out.file.flush()
        inv.note(NEXT_STEPS.format(path=escape(str(path.resolve()))))

    inv.emit(data, render)


@command(keys_app, "public")
def public(inv: Invocation) -> None:
    """Print the public JWK of the configured private key (to register it again, or to check which it is)."""
    channel = inv.channel()
    if channel.assertion_key_file is None:
        fail(
            "no assertion key file: set LINE_ASSERTION_KEY_FILE, pass --key-file, or set assertion_key_file "
            "in linepush.toml",
            hint="make one with `linepush keys generate`",
        )
    key = load_private_key(channel.assertion_key_file)
    data = {
        "private_key_file": str(channel.assertion_key_file),
        "public_jwk": key.public_jwk(),
        "thumbprint": key.thumbprint(),
        "kid": channel.assertion_kid,
    }

    def render() -> None:
        inv.out.file.write(json.dumps(key.public_jwk(), indent=2) + "\n")
        inv.out.file.flush()
        inv.note(
            f"key file {escape(str(channel.assertion_key_file))}, RSA-{key.key_size}, "
            f"thumbprint {key.thumbprint()}"
        )
        if channel.assertion_kid is None:
            inv.note("no kid configured: set LINE_ASSERTION_KID to the kid the console showed for this key")

    inv.emit(data, render)


__all__ = ["default_key_path", "keys_app"]
