"""The README and docs/ stay true: every command they show is one that works here, every file and
link they name exists. (The README's runnable request runs against the real service in
tests/service/test_api.py.)"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from stereocrafter.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "README.md"]


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, text) of every fenced block of a Markdown file."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```", path.read_text(), flags=re.M | re.S)


def command_lines(path: Path) -> list[str]:
    """The shell commands of a file's bash blocks, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for info, text in code_blocks(path):
        if info.split()[:1] != ["bash"]:
            continue
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_the_docs_have_the_commands_and_links_these_tests_check() -> None:
    assert all(path.is_file() for path in DOCS), [p for p in DOCS if not p.is_file()]
    assert sum(len(command_lines(p)) for p in DOCS) >= 8
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250  # a newcomer reads it in five minutes


def test_every_make_target_the_docs_name_exists() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = {m for path in DOCS for m in re.findall(r"`(?:PORT=\d+ )?make ([a-z][\w-]*)", path.read_text())}
    named |= {line.split()[1] for p in DOCS for line in command_lines(p) if line.startswith("make ")}
    assert named and named <= targets, named - targets


def test_every_nx_target_the_docs_name_exists() -> None:
    project = json.loads((ROOT / "project.json").read_text())
    named = {t for path in DOCS for t in re.findall(r"nx run ([\w-]+:[\w-]+)", path.read_text())}
    assert {"stereocrafter-sagemaker:sagemaker-build", "stereocrafter-sagemaker:sagemaker-deploy"} <= named
    for target in named:
        project_name, name = target.split(":")
        assert project_name == project["name"] and name in project["targets"], target


def stereocrafter_commands() -> list[str]:
    """Every `stereocrafter ...` command line of the docs' bash blocks, and every inline one meant to
    be run as written (``.venv/bin/stereocrafter ...``; a bare `stereocrafter convert-long` in prose
    names the command, it is not a command line)."""
    found = []
    for path in DOCS:
        found += [line for line in command_lines(path) if re.match(r"(\.venv/bin/)?stereocrafter ", line)]
        found += re.findall(r"`(\.venv/bin/stereocrafter [^`]*)`", path.read_text())
    return found


@pytest.mark.parametrize("line", stereocrafter_commands(), ids=lambda line: line[:60])
def test_every_stereocrafter_command_in_the_docs_parses(line: str) -> None:
    """Each documented command line is accepted by the CLI's own parser (optional parts in [...],
    alternatives a|b: the first is taken)."""
    line = re.sub(r"\[([^\]]*)\]", r"\1", line)  # [--preset fast] -> --preset fast
    argv = [token.split("|")[0] for token in shlex.split(line)[1:]]  # reference|fast -> reference
    if argv[-1:] == ["..."]:
        argv = argv[:-1]
    build_parser().parse_args(argv)  # argparse exits (SystemExit 2) on an unknown option or choice


def test_every_file_the_docs_name_exists() -> None:
    pattern = r"(?<![\w./-])((?:bench|docs|tests|containerize|stereocrafter|requirements)/[\w./-]*\w)"
    missing = []
    for path in DOCS:
        for name in set(re.findall(pattern, path.read_text())):
            if not (ROOT / name).exists() and not name.startswith("stereocrafter/tiny"):
                missing.append((path.name, name))
    assert missing == []


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                broken.append((path.name, target))
            elif anchor and linked.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), flags=re.M)}
                if anchor not in anchors:
                    broken.append((path.name, target))
    assert broken == []
