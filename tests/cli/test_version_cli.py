"""`recsmith --version` prints the installed version and runs no command."""

import subprocess
import sys

from typer.testing import CliRunner

import recsmith
from recsmith.cli.main import app


def test_version_prints_the_package_version_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"recsmith {recsmith.__version__}"


def test_version_works_from_the_console_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "recsmith", "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"recsmith {recsmith.__version__}"
