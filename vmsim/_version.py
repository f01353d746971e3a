"""The version of vmsim, in a module of its own so that any layer can read it without importing the package's
`__init__` (which sits above them all); pyproject.toml states the same number for packaging."""

__version__ = "0.1.0"
