"""The documentation site: ``mkdocs build --strict`` of mkdocs.yml (a broken link or anchor, a
page left out of the nav or an API object that cannot be found fails it), then checks that
the generated references say what the code says, and that every ``fgbg`` command line the
README and the guide show uses options the parser has."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fgbg.builder.cli import _build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


def _commands() -> dict[str, argparse.ArgumentParser]:
    top = _build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _text(page: Path) -> str:
    """A built page's article as plain text."""
    body = page.read_text()
    body = body[body.index("<article"):body.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                        "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    return out


def test_every_guide_page_is_built(site: Path) -> None:
    for page in PAGES[1:]:
        rel = page.relative_to(DOCS).with_suffix("")
        built = site / ("index.html" if rel.name == "index" else rel / "index.html")
        assert built.exists(), f"{page} was not built"
    assert (site / "schema" / "manifest.schema.json").exists() and (site / "img" / "view-grid.png").exists()
    assert not list(site.rglob("*.py")), "the hooks and the API source links are not site content"


def test_cli_reference_lists_every_command_and_option(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text()
    text = _text(site / "reference" / "cli" / "index.html")
    commands = _commands()
    assert len(commands) >= 12
    for name, parser in commands.items():
        assert f'id="{name}"' in page, f"no section for fgbg {name}"
        assert parser.description and parser.description in text
        for option in _options(parser):
            anchor = next(a for a in parser._actions if option in a.option_strings).option_strings[-1].lstrip("-")
            assert f'id="{name}-{anchor}"' in page, f"fgbg {name} {option} is not listed"
            assert option in text
    build = commands["build"]
    for action in build._actions:  # help texts and defaults, as the parser expands them
        if action.help and action.option_strings:
            assert " ".join(action.help.split("%")[0].split()) in " ".join(text.split()), action.option_strings
    assert "(default: 20)" in text and "--placements PLACEMENTS" in text


def test_api_reference_documents_the_readers(site: Path) -> None:
    page = (site / "reference" / "api" / "index.html").read_text()
    for name in ("open_dataset", "Dataset", "Dataset.get_many", "Dataset.stream", "Dataset.torch_dataset",
                 "Dataset.tf_dataset", "stream.Stream", "stream.Stream.state_dict", "adapters.torch_dataset",
                 "adapters.tf_dataset", "errors.DatasetError", "errors.MetadataError", "errors.ShardReadError"):
        assert f'id="fgbg.readers.{name}"' in page, f"fgbg.readers.{name} is not documented"
    text = _text(site / "reference" / "api" / "index.html")
    assert "Open the dataset at url" in text  # open_dataset's own docstring
    assert ":func:" not in text and ":meth:" not in text  # Sphinx roles shown as code (docs/hooks/docstring_roles.py)


def test_format_reference_and_its_schemas(site: Path) -> None:
    page = (site / "FORMAT" / "index.html").read_text()
    assert 'id="2-one-sample"' in page and 'id="10-what-a-reader-trusts-nothing"' in page  # anchors others link to
    assert 'href="../schema/"' in page
    schemas = _text(site / "schema" / "index.html")
    for path in (DOCS / "schema").glob("*.schema.json"):
        assert path.name in schemas


def test_cloud_bench_places_are_marked() -> None:
    for name in ("object-storage.md", "performance.md"):
        assert "<!-- cloud-bench-table -->" in (DOCS / name).read_text(), name


_SPAN = re.compile(r"`((?:\.venv/bin/)?fgbg [^`]+)`")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _command_lines(text: str) -> list[str]:
    """Every ``fgbg COMMAND ...`` the text shows: lines of code blocks (with their indented
    continuation lines, comments dropped) and inline code spans."""
    found = [m.group(1) for m in _SPAN.finditer(re.sub(r"```.*?```", "", text, flags=re.S))]
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        current: list[str] | None = None
        for line in block.splitlines():
            code = re.split(r"\s#\s", line, maxsplit=1)[0]
            if current is not None and line[:1] == " " and code.strip():
                current.append(code)
                continue
            if current is not None:
                found.append(" ".join(current))
            current = [code] if re.match(r"(?:\$ )?(?:\.venv/bin/)?fgbg [a-z]", code) else None
        if current is not None:
            found.append(" ".join(current))
    return found


def test_every_command_line_shown_uses_real_options() -> None:
    commands = _commands()
    seen = 0
    for page in PAGES:
        for line in _command_lines(page.read_text()):
            words = line.replace("$ ", "").split()
            name = words[1]
            if name.startswith("-"):
                continue  # fgbg --version
            assert name in commands, f"{page.name}: `{line}` names no fgbg command"
            unknown = set(_FLAG.findall(line)) - _options(commands[name])
            assert not unknown, f"{page.name}: `{line}` uses {sorted(unknown)}, which fgbg {name} does not have"
            seen += 1
    assert seen > 40


def test_readme_links_resolve() -> None:
    """The README is outside the site (mkdocs does not check it): its relative links must name
    files that exist, and its anchors into the format reference headings that exist."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(links) > 10
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"README links to {link}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.M)
            slugs = {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}
            assert anchor in slugs, f"README links to {link}: no such heading"
