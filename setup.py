"""Package discovery for the ``fgbg`` distribution (everything else is in pyproject.toml).

The source folders ``builder/`` and ``readers/`` install as ``fgbg.builder`` and
``fgbg.readers`` (``package-dir`` in pyproject.toml), so the only top-level name in
site-packages is ``fgbg``. Their subpackages are found here rather than listed by hand:
setuptools' declarative ``packages.find`` cannot prefix what it finds with ``fgbg.``.
"""

from setuptools import find_packages, setup

setup(packages=[f"fgbg.{name}" for name in find_packages(include=["builder", "builder.*", "readers", "readers.*"])])
