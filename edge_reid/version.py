"""The toolkit version, recorded in every artifact's metadata."""

__version__ = "0.1.0"
