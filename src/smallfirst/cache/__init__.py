"""The response cache: exact and semantic hits answered without calling a model.

`lookup` runs in the chat path once the request's target is resolved; a hit is the answer,
anything else is a `Lookup` whose `keep` stores the response once it succeeded.
"""

from smallfirst.cache.gateway import Lookup, lookup

__all__ = ["Lookup", "lookup"]
