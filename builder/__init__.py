"""fgbg builder: composite foregrounds onto backgrounds straight into verified shards.

Pipeline, one module per stage: ``sources`` -> ``plan`` -> ``composite`` -> ``depth`` ->
``encode`` -> ``shards`` (writers) -> ``receipts``/``manifest`` (commit); ``build`` runs it.
"""

from .build import BuildResult, build
from .config import BuildConfig
from .errors import FgbgError
from .manifest import TOOL_VERSION

__all__ = ["BuildConfig", "BuildResult", "FgbgError", "build"]
__version__ = TOOL_VERSION
