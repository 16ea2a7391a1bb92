"""MkDocs hook: Sphinx cross-reference roles in the readers' docstrings, rendered as plain code.

The docstrings say ``:func:`open_dataset``` (they are read in editors and ``help()`` too);
Markdown renders that as the text ``:func:`` before a code span. This drops the role name and
keeps the code span, on the API reference page only.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|meth|class|mod|attr|exc|data|obj):(?=<code>)")


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri.startswith("reference/"):
        html = _ROLE.sub("", html)
    return html
