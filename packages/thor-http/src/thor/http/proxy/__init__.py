"""thor.http.proxy: building blocks for HTTP intermediaries (reverse and forward proxies)."""

from ._access_log import AccessRecord

__all__ = ["AccessRecord"]
