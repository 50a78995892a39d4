"""Every command has complete help, and every `anfe ...` command the README and the guides show exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from anfe.cli.app import cli

README = Path(__file__).resolve().parent.parent / "README.md"
#: The README and the guides beside it (the reference is generated from the commands themselves).
DOCS = [README, *sorted(p for p in (README.parent / "docs").glob("*.md") if p.name != "reference.md")]


def _doc_lines() -> list[str]:
    return [line.strip() for doc in DOCS for line in doc.read_text(encoding="utf-8").splitlines()]


def _walk(command: click.Command, ctx: click.Context, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"`anfe {' '.join(path + (name,))}` cannot be loaded"
            yield from _walk(sub, ctx, path + (name,))


def _all_commands():
    ctx = click.Context(cli)
    return list(_walk(cli, ctx))


def test_every_command_has_help_text():
    runner = CliRunner()
    commands = _all_commands()
    assert len(commands) > 8
    for path, command in commands:
        assert (command.help or "").strip(), f"`anfe {' '.join(path)}` has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and param.name not in ("help", "version"):
                assert (param.help or "").strip(), f"`anfe {' '.join(path)}` option {param.opts} has no help"
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_readme_commands_exist():
    known = {" ".join(path) for path, _ in _all_commands()}
    lines = _doc_lines()
    used = set()
    for line in lines:
        if not line.startswith("anfe "):
            continue
        words = [w for w in shlex.split(line.split("#")[0]) if not w.startswith("-")][1:]
        # The longest prefix of the words that is a command.
        for n in range(len(words), 0, -1):
            if " ".join(words[:n]) in known:
                used.add(" ".join(words[:n]))
                break
        else:
            pytest.fail(f"the docs show `{line}`, but anfe has no such command")
    assert used, "the docs show no anfe command"


@pytest.mark.parametrize("line", [line for line in _doc_lines() if re.match(r"^scrapy (crawl|list)", line)])
def test_readme_scrapy_spiders_exist(line, monkeypatch):
    from scrapy.spiderloader import SpiderLoader
    from scrapy.utils.project import get_project_settings

    monkeypatch.chdir(README.parent)  # scrapy finds scrapy.cfg from the current folder; undone after the test
    names = SpiderLoader.from_settings(get_project_settings()).list()
    words = shlex.split(line)
    if words[1] == "crawl":
        assert words[2] in names, f"README crawls spider {words[2]!r}, known: {names}"
