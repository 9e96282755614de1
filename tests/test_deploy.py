"""The systemd units in deploy/ as systemd reads them (`systemd-analyze verify`, skipped where it is missing),
and the settings they name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "deploy").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")


def test_there_are_units_for_serve_and_worker() -> None:
    assert {unit.name for unit in UNITS} == {"linepush-serve.service", "linepush-worker.service"}
    for unit in UNITS:
        text = unit.read_text()
        needed = ("Restart=on-failure", "User=linepush", "EnvironmentFile=/etc/linepush/linepush.env")
        for directive in needed:
            assert directive in text, (unit.name, directive)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: this environment's linepush stands in for /opt's.
    linepush = Path(sys.executable).with_name("linepush")
    if not linepush.exists():
        pytest.skip("no linepush script beside this Python")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/linepush/bin/linepush", str(linepush)))
    done = subprocess.run([ANALYZE or "", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # systemd only warns (exit 0) about a directive it cannot parse: any line about the unit is a failure.
    about_unit = [line for line in done.stderr.splitlines() if str(copy) in line or unit.name in line]
    assert done.returncode == 0 and not about_unit, done.stderr


def test_the_environment_file_names_what_the_commands_read() -> None:
    from linepush.config import ENV_VARS

    example = (ROOT / "deploy" / "linepush.env.example").read_text()
    named = {line.split("=", 1)[0].lstrip("# ") for line in example.splitlines() if "=" in line}
    assert named <= set(ENV_VARS.values()) | {"LINEPUSH_STORE"}
    assert {"LINE_CHANNEL_ID", "LINE_ASSERTION_KEY_FILE", "LINEPUSH_STORE"} <= named
