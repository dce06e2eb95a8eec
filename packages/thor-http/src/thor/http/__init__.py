"""thor.http (thor-http): not implemented yet; this distribution is an installable skeleton."""

from ._version import __version__

__all__ = ["__version__"]
