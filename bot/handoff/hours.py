"""Business hours: when people answer hand-offs.

    BUSINESS_HOURS="Mon-Fri 08:00-20:00; Sat 10:00-16:00"   BUSINESS_TIMEZONE="Europe/Berlin"

Rules are separated by ';'. Each is a day or a day range (Mon..Sun, English, any case; ranges may
wrap, e.g. Fri-Mon; several days or ranges separated by ',') and one or more time ranges HH:MM-HH:MM
separated by ',' (24:00 ends a day). "always" (or "24/7") means always open. A day without a rule
is closed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _day(token: str) -> int:
    t = token.strip().lower()
    if t in DAYS:
        return DAYS.index(t)
    if t in _FULL:
        return _FULL[t]
    raise ValueError(f"unknown day {token.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _minutes(h: str, m: str) -> int:
    hh, mm = int(h), int(m)
    if not (0 <= hh <= 24 and 0 <= mm < 60) or (hh == 24 and mm):
        raise ValueError(f"bad time {h}:{m}")
    return hh * 60 + mm


@dataclass(frozen=True)
class BusinessHours:
    # weekday (0 = Monday) -> list of (start minute, end minute), sorted
    week: tuple[tuple[tuple[int, int], ...], ...]
    tz: ZoneInfo
    always: bool = False
    spec: str = ""

    @classmethod
    def parse(cls, spec: str, timezone: str) -> "BusinessHours":
        try:
            tz = ZoneInfo(timezone.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Berlin)") from None
        text = (spec or "").strip()
        if text.lower() in ("always", "24/7"):
            return cls(tuple(((0, 1440),) for _ in range(7)), tz, True, text)
        week: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        rules = [r.strip() for r in text.split(";") if r.strip()]
        if not rules:
            raise ValueError("no opening hours given (e.g. 'Mon-Fri 08:00-20:00; Sat 10:00-16:00', or 'always')")
        for rule in rules:
            m = re.match(r"^([A-Za-z,\s-]+?)\s+(\d.*)$", rule)
            if not m:
                raise ValueError(f"cannot read {rule!r}: expected days then times, e.g. 'Mon-Fri 08:00-20:00'")
            days: list[int] = []
            for part in m.group(1).split(","):
                if "-" in part:
                    a, b = part.split("-", 1)
                    start, end = _day(a), _day(b)
                    d = start
                    while True:
                        days.append(d)
                        if d == end:
                            break
                        d = (d + 1) % 7
                else:
                    days.append(_day(part))
            for tr in m.group(2).split(","):
                tm = _TIME_RANGE.match(tr.strip())
                if not tm:
                    raise ValueError(f"cannot read the time range {tr.strip()!r} in {rule!r} (use HH:MM-HH:MM)")
                start_m, end_m = _minutes(tm.group(1), tm.group(2)), _minutes(tm.group(3), tm.group(4))
                if end_m <= start_m:
                    raise ValueError(f"the time range {tr.strip()!r} ends before it starts")
                for d in days:
                    week[d].append((start_m, end_m))
        return cls(tuple(tuple(sorted(w)) for w in week), tz, False, text)

    def is_open(self, now: datetime) -> bool:
        if self.always:
            return True
        local = now.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.week[local.weekday()])

    def next_open(self, now: datetime) -> datetime | None:
        """The next moment the team is there (now if open), in the business time zone; None if never."""
        local = now.astimezone(self.tz)
        if self.is_open(now):
            return local
        for offset in range(0, 8):
            day = (local + timedelta(days=offset)).date()
            for a, _b in self.week[day.weekday()]:
                if a == 1440:
                    continue
                start = datetime.combine(day, time(a // 60, a % 60), self.tz)
                if start > local:
                    return start
        return None

    def describe(self, weekday_names: list[str]) -> str:
        """'Mon-Fri 08:00-20:00, Sat 10:00-16:00' with the given (localised) weekday names."""
        if self.always:
            return "24/7"
        groups: list[tuple[int, int, tuple]] = []  # consecutive days with the same hours
        for d in range(7):
            hours = self.week[d]
            if not hours:
                continue
            if groups and groups[-1][1] == d - 1 and groups[-1][2] == hours:
                groups[-1] = (groups[-1][0], d, hours)
            else:
                groups.append((d, d, hours))
        out = []
        for a, b, hours in groups:
            days = weekday_names[a] if a == b else f"{weekday_names[a]}–{weekday_names[b]}"
            times = ", ".join(f"{s // 60:02d}:{s % 60:02d}–{e // 60:02d}:{e % 60:02d}" for s, e in hours)
            out.append(f"{days} {times}")
        return "; ".join(out)
