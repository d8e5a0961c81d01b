"""A bounded mapping that forgets the entries set longest ago."""

import collections


class Lru(collections.OrderedDict):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def put(self, key, value):
        """Set ``key``, making it the newest entry; drop the oldest past ``size``."""
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
