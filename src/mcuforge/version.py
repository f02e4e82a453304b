"""The package version, written into every generated file."""
__version__ = "0.1.0"
