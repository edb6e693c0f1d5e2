"""Quiver's Python client: the binary protocol, numpy in and out (docs/python.md).

    import quiver
    client = quiver.Client("127.0.0.1", 7701)
    hits = client.search("movies", vector, k=200)
"""

from . import errors
from ._wire import SearchResult
from .client import Client
from .errors import QuiverError

__all__ = ["Client", "SearchResult", "QuiverError", "errors"]
