"""UTC times as the database stores them (millisecond DATETIME) and the API shows them."""

import datetime


def utcnow() -> datetime.datetime:
    """The current UTC time, naive, cut to the milliseconds a DATETIME(3) keeps."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(moment: datetime.datetime) -> str:
    """ISO 8601 UTC, e.g. 2026-11-23T12:00:00.123Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
