"""The user docs agree with the code: commands, options and links that README.md and docs/*.md show exist.

A user follows the docs literally: a renamed option or a command that moved gives them an error
("No such option") the docs do not explain. These checks read every ``medmm ...`` command line in the
docs' code blocks and inline code, resolve it against the real ``medmm`` command tree (typer's click
objects, no subprocess) and check every ``--option`` on it; every relative Markdown link and its
``#anchor``; every dotted Python name (``medmm.x.y``) the docs cite; and that no ``timeout`` shown in
front of ``medmm`` hides its exit code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from medmm.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`\n]+)`")
#: ``medmm`` as a program name: at the start of the code, after ``/`` (``.venv/bin/medmm``), or after
#: ``;``, ``|``, ``&&``, ``(``, ``=`` (not ``git archive HEAD medmm bench``, where it is a folder).
_PROGRAM = re.compile(r"(?:^\s*|(?<=/)|(?<=[;|&(=]\s)|(?<=[;|&(=]))medmm\s+(?=[a-z-])")
_OPTION = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")
_END = re.compile(r"\s(?:#|\||;|&&|\|\|)\s|\s[|;]$")


def _code_texts(text: str) -> Iterator[tuple[int, str]]:
    """(line number, code) for every line of a fenced block and every inline code span."""
    fenced = set()
    for m in _FENCE.finditer(text):
        first = text.count("\n", 0, m.start(1)) + 1
        pending: tuple[int, str] | None = None
        for i, line in enumerate(m.group(1).splitlines()):
            fenced.add(first + i)
            start, head = pending if pending else (first + i, "")
            if line.endswith("\\"):  # a shell line continued on the next
                pending = (start, head + line[:-1] + " ")
                continue
            pending = None
            yield start, head + line
    for number, line in enumerate(text.splitlines(), 1):
        if number not in fenced:
            for span in _SPAN.findall(line):
                yield number, span


def _command_lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, tokens after ``medmm``) for each ``medmm ...`` invocation shown in code."""
    for number, code in _code_texts(text):
        for m in _PROGRAM.finditer(code):
            rest = _END.split(code[m.end() :], maxsplit=1)[0]
            yield number, rest.split()


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(param.opts + param.secondary_opts)
    return names


def _problems(tokens: list[str], root: Any) -> list[str]:
    """What does not exist in ``medmm <tokens>``: an unknown subcommand or option."""
    commands = [root]
    words: list[str] = []
    for i, token in enumerate(tokens):
        groups = [c for c in commands if getattr(c, "commands", None)]
        if not groups:
            rest = tokens[i:]
            break
        if token.startswith("-") or not re.fullmatch(r"[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)*", token):
            return []  # `medmm reports --help`, `medmm COMMAND`: a group shown as such
        names = token.split("/")  # `medmm anomaly train/score/evaluate`
        unknown = [n for g in groups for n in names if n not in g.commands]
        if unknown:
            where = " ".join(["medmm", *words]) or "medmm"
            return [f"{where}: no command {unknown[0]!r}"]
        commands = [g.commands[n] for g in groups for n in names]
        words.append(token)
    else:
        rest = []
    problems = []
    for token in rest:
        m = _OPTION.match(token)
        if m and not all(m.group(1) in _options(c) for c in commands):
            problems.append(f"medmm {' '.join(words)}: no option {m.group(1)}")
    return problems


def _doc_problems(path: Path, root: Any) -> list[str]:
    out = []
    for number, tokens in _command_lines(path.read_text(encoding="utf-8")):
        out += [f"{path.relative_to(ROOT)}:{number}: {p}" for p in _problems(tokens, root)]
    return out


@pytest.fixture(scope="module")
def root() -> Any:
    return typer.main.get_command(app)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_commands_and_options_exist(doc: Path, root: Any) -> None:
    assert _doc_problems(doc, root) == []


def test_checker_finds_a_renamed_option_and_a_missing_command(root: Any) -> None:
    text = (
        "```bash\nmedmm signals ingest in --out r --sample-rate 250   # renamed\n```\n"
        "Run `medmm anomaly train/score/predict RUN` or `.venv/bin/medmm ingest a --out r --workrs 2`.\n"
        "`medmm reports --help`, `medmm COMMAND --help` and `medmm align r --window 24h` are fine.\n"
        "`git archive HEAD medmm bench` names a folder; `cd x && medmm demo --outt r` does not.\n"
    )
    found = [p for n, t in _command_lines(text) for p in _problems(t, root)]
    assert found == [
        "medmm signals ingest: no option --sample-rate",
        "medmm anomaly: no command 'predict'",
        "medmm ingest: no option --workrs",
        "medmm demo: no option --outt",
    ]


def test_continued_command_lines_are_one_command(root: Any) -> None:
    text = "```\nmedmm reports parse x.csv --out r \\\n    --id-colum uid\n```\n"
    found = [p for n, t in _command_lines(text) for p in _problems(t, root)]
    assert found == ["medmm reports parse: no option --id-colum"]


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (lower case, punctuation dropped, spaces -> '-')."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.*)$", _FENCE.sub("", doc.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_point_to_files_and_headings(doc: Path) -> None:
    missing = []
    prose = _SPAN.sub("", _FENCE.sub("", doc.read_text(encoding="utf-8")))  # links are not in code
    for target in _LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            missing.append(target)
    assert missing == []


def test_anchor_slugs_follow_github(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# R-peak detector (`medmm.signals.beats.detect_rpeaks`)\n## Limits\n## Limits\n")
    assert _anchors(page) == {"r-peak-detector-medmmsignalsbeatsdetect_rpeaks", "limits", "limits-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_timeout_lines_keep_medmms_exit_code(doc: Path) -> None:
    # GNU timeout exits 124 when its limit stops the command, hiding medmm's documented 143 (stopped
    # by SIGTERM: the next run resumes) from a monitor reading $? - unless --preserve-status is given.
    lines = [code for _, code in _code_texts(doc.read_text(encoding="utf-8"))]
    hiding = [c for c in lines if re.search(r"\btimeout\s+(?!--preserve-status)\S+\s+\S*medmm\b", c)]
    assert hiding == []


#: Dotted names in backticks (`medmm.signals.beats.detect_rpeaks`), not Dask config keys
#: (`medmm.worker-wait`).
_DOTTED = re.compile(r"`((?:medmm|bench)(?:\.[A-Za-z_]\w*)+)(?![\w-])")
#: Names the docs cite as removed code (measured, then taken out; kept in git history).
_REMOVED = {"medmm.anomaly.sqi.detector_agreement"}


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_names_in_docs_exist(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is not installed; the docs run it from the checkout
    names = set(_DOTTED.findall(doc.read_text(encoding="utf-8"))) - _REMOVED
    assert sorted(n for n in names if not _resolves(n)) == []


def test_python_name_check_catches_a_moved_function() -> None:
    assert _resolves("medmm.align.pipeline.align_run")
    assert not _resolves("medmm.align.align_run")
    assert _DOTTED.findall("`medmm.worker-wait` and `medmm.signals.run_signals(x)`") == [
        "medmm.signals.run_signals"
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_benchmarks_named_in_docs_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    names = set(re.findall(r"python -m bench ([a-z_]+)\b", text))
    modules = set(re.findall(r"python -m bench\.(\w+)", text))
    missing = sorted(n for n in names if not (ROOT / "bench" / f"bench_{n}.py").exists())
    missing += sorted(f"bench.{m}" for m in modules if not (ROOT / "bench" / f"{m}.py").exists())
    assert missing == []
