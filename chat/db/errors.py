"""Database errors that callers act on, translated once from the driver's."""


class DuplicateKey(Exception):
    """A statement would have duplicated a unique key (MySQL error 1062).

    Raised by the data-access layer in place of the driver's IntegrityError, so
    callers answer the conflict it means with ``except DuplicateKey`` alone.
    """
