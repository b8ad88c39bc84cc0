"""The package's version, read by setuptools (pyproject.toml) and reported by the CLI."""

__version__ = "0.2.0"
