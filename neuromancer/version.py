"""Package version, kept in one place for setup.py and the docs."""
__version__ = "1.6.0.dev0"
