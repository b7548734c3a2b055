"""The UTC offsets of a timezone over time, for databases that have no
timezone support (SQLite).

PostgreSQL converts with ``AT TIME ZONE``. SQLite only knows fixed offsets
('+480 minutes'), so a day, a month or a weekday in the app's timezone is
computed with the offset the zone had at that moment: the zone's history from
1970 to 2100 is cut into spans of one offset (Asia/Shanghai: 13 spans, from
its summer times of 1986-1991; a zone with summer time today about 260),
found once per zone with zoneinfo, the rules Python uses. Moments before 1970
take the zone's offset of 1970.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = dt.UTC
FIRST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LAST = dt.datetime(2100, 1, 1, tzinfo=UTC)
_STEP = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Span:
    """From ``start`` (None: always before) until ``end`` (None: ever after),
    local time is UTC + ``seconds``."""

    start: dt.datetime | None
    end: dt.datetime | None
    seconds: int

    def distance(self, moment: dt.datetime) -> dt.timedelta:
        if self.start is not None and moment < self.start:
            return self.start - moment
        if self.end is not None and moment >= self.end:
            return moment - self.end
        return dt.timedelta(0)


def _offset(zone: ZoneInfo, moment: dt.datetime) -> int:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@lru_cache(maxsize=16)
def spans(key: str) -> tuple[Span, ...]:
    zone = ZoneInfo(key)
    changes: list[tuple[dt.datetime, int]] = []
    moment, offset = FIRST, _offset(zone, FIRST)
    first = offset
    while moment < LAST:
        following = moment + _STEP
        next_offset = _offset(zone, following)
        if next_offset != offset:
            low, high = moment, following  # offset(low) = offset, offset(high) = next: find the change
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if _offset(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            changes.append((high, next_offset))
            offset = next_offset
        moment = following
    result: list[Span] = []
    start: dt.datetime | None = None
    seconds = first
    for change, after in changes:
        result.append(Span(start, change, seconds))
        start, seconds = change, after
    result.append(Span(start, None, seconds))
    return tuple(result)


def holding(key: str, moment: dt.datetime) -> int:
    """The index of the span that holds a moment."""
    return next(i for i, span in enumerate(spans(key)) if span.distance(moment) == dt.timedelta(0))


@lru_cache(maxsize=64)
def by_nearness(key: str, anchor: int) -> tuple[Span, ...]:
    """The zone's spans, the ``anchor``-th first, then the ones nearest to it:
    a CASE over them finds recent moments in one or two tests."""
    return tuple(sorted(spans(key), key=lambda span: abs(spans(key).index(span) - anchor)))
