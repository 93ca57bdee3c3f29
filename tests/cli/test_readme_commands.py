"""Every shell command in the README runs as written, in order, against a temporary home.

The README's ```bash blocks are read top to bottom and each command is run with bash in a fresh folder whose
``RECSMITH_HOME`` is temporary. A block introduced by ``<!-- file: NAME -->`` is written to that folder as
``NAME`` (the schema and experiment files the commands name). Commands that need a running server, another
host or the network are skipped, each with its reason; commands on MovieLens 100K run when the shared
datasets hold it. The test stops at the first command that fails and shows it with its output.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
FILE_MARK = re.compile(r"^<!--\s*file:\s*(\S+)\s*-->\s*$")

# (pattern, reason): a command matching the pattern is not run here.
SKIPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\s*curl\b"), "needs a running server"),
    (re.compile(r"^\s*recsmith serve\b"), "starts a server"),
    (re.compile(r"^\s*pip\b"), "installs packages"),
    (re.compile(r"--download\b"), "downloads from GroupLens"),
    (re.compile(r"postgresql\+psycopg://app@db"), "needs the application's own database host"),
    (re.compile(r"\bs3://|\bgs://"), "needs cloud storage"),
]
if importlib.util.find_spec("pyspark") is None:
    SKIPS.append((re.compile(r"--engine spark\b"), "needs the spark extra"))


@dataclass(frozen=True)
class Command:
    """One shell command of the README, with the line it starts on."""

    line: int
    text: str


def readme_blocks(text: str) -> tuple[list[list[Command]], dict[str, str]]:
    """The README's bash blocks as commands, and the files its ``<!-- file: NAME -->`` blocks hold."""
    blocks: list[list[Command]] = []
    files: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    pending_file: str | None = None
    while index < len(lines):
        mark = FILE_MARK.match(lines[index])
        if mark:
            pending_file = mark.group(1)
            index += 1
            continue
        fence = FENCE.match(lines[index])
        if not fence:
            if lines[index].strip():
                pending_file = None
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = lines[start:end]
        if pending_file is not None:
            files[pending_file] = "\n".join(body) + "\n"
        elif language in ("bash", "sh", "shell"):
            blocks.append(split_commands(body, first_line=start + 1))
        pending_file = None
        index = end + 1
    return blocks, files


def split_commands(body: list[str], first_line: int) -> list[Command]:
    """Shell commands of a block: continuation lines joined, comment lines dropped, quotes kept whole."""
    commands: list[Command] = []
    current: list[str] = []
    start = first_line
    for offset, line in enumerate(body):
        if not current:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = first_line + offset
        current.append(line)
        joined = "\n".join(current)
        if joined.endswith("\\"):
            continue
        try:
            shlex.split(joined, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        commands.append(Command(start, joined))
        current = []
    assert not current, f"README.md:{start}: unterminated command {current!r}"
    return commands


def skip_reason(command: Command, have_ml100k: bool) -> str | None:
    """Why a command is not run here, or None to run it."""
    for pattern, reason in SKIPS:
        if pattern.search(command.text):
            return reason
    if not have_ml100k and re.search(r"ml-?100k|u\.data", command.text):
        return "MovieLens 100K is not in the shared datasets"
    return None


def shims(folder: Path) -> Path:
    """A bin folder whose ``recsmith`` and ``python`` are this interpreter, so the code under test runs."""
    folder.mkdir()
    for name, line in (("recsmith", f'exec "{sys.executable}" -m recsmith "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"')):
        shim = folder / name
        shim.write_text(f"#!/usr/bin/env bash\n{line}\n")
        shim.chmod(0o755)
    return folder


def test_readme_parser_joins_continuations_and_quotes() -> None:
    commands = split_commands(["# a comment", "recsmith a \\", "  --b c", "", "curl -d '{", "  1}'", "x # y"], 10)
    assert [(c.line, c.text) for c in commands] == [
        (11, "recsmith a \\\n  --b c"), (14, "curl -d '{\n  1}'"), (16, "x # y")]


def test_every_readme_shell_command_runs_as_written(tmp_path: Path, datasets_dir: Path) -> None:
    blocks, files = readme_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no bash blocks"
    work = tmp_path / "work"
    work.mkdir()
    for name, content in files.items():
        (work / name).write_text(content, encoding="utf-8")
    ml100k = datasets_dir / "ml-100k"
    have_ml100k = (ml100k / "u.data").exists()
    if have_ml100k:
        (work / "ml-100k").symlink_to(ml100k)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECSMITH_")}
    env.update(RECSMITH_HOME=str(work / ".recsmith"), COLUMNS="100",
               PATH=f"{shims(tmp_path / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}")
    ran, skipped = 0, []
    for block in blocks:
        for command in block:
            reason = skip_reason(command, have_ml100k)
            if reason:
                skipped.append((command.line, reason))
                continue
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command.text], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, (
                f"README.md:{command.line}: exit {result.returncode}\n$ {command.text}\n"
                f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")
            ran += 1
    assert ran >= 20, f"only {ran} README commands ran; skipped: {skipped}"
