"""MkDocs hook: a page listing the published JSON Schemas (``docs/schema/*.schema.json``).

The format reference links to the folder (``schema/``), which a repository browser shows as a
listing; on the site that link goes to this generated page, which names each schema with the
title and description it carries, so the list follows the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PAGE = "schema/index.md"


def render(docs_dir: Path) -> str:
    lines = ["# JSON Schemas", "",
             "The metadata files of a dataset as JSON Schema (generated from `fgbg.readers.schema` by "
             "`python tools/schemas.py`; a test fails when one is stale). The text that goes with them is "
             "the [format reference](../FORMAT.md).", "",
             "| schema | describes |", "|---|---|"]
    for path in sorted((docs_dir / "schema").glob("*.schema.json")):
        schema = json.loads(path.read_text())
        root = schema.get("$defs", {}).get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
        about = " ".join(str(root.get("description", "")).split()).split(". ")[0].replace("``", "`")
        lines.append(f"| [`{path.name}`]({path.name}) | {about} |")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    files.append(File.generated(config, PAGE, content=render(Path(config["docs_dir"]))))
    return files


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "FORMAT.md":  # the folder link, as a link to this page
        markdown = markdown.replace("](schema/)", "](schema/index.md)")
    return markdown
