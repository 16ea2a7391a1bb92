"""``fgbg view``: a read-only dataset browser in the web browser, served from the shards in place.

Modules: :mod:`.data` (what each page shows, as plain data and images, from the reader
API), :mod:`.server` (the HTTP routes on the standard library's threading server),
:mod:`.export` (the same pages as a static site), ``static/`` (plain HTML/JS/CSS).
"""

from .data import Filters, ViewData
from .export import export_site
from .server import serve

__all__ = ["Filters", "ViewData", "export_site", "serve"]
