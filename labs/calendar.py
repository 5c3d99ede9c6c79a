"""iCalendar feeds: per-user and per-room calendars of lab meetings at secret-token addresses.

The first half writes RFC 5545 text and needs neither Flask nor the database (escaping, folding at 75
octets without splitting a UTF-8 character, VTIMEZONE built from the zone database, CRLF line ends).
The second half is the feed service: tokens, which meetings a feed holds, and the text of a feed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, or_, select

from labs.feeds_model import FeedToken
from labs.models import (
    Booking,
    BookingState,
    LabOccurrence,
    LabSession,
    OccurrenceStatus,
    Room,
    session_trainer,
)
from labs.reports import lab_titles
from lms.extensions import db
from lms.i18n import is_valid_timezone
from lms.models import User
from lms.services import audit
from lms.timeutil import utcnow

PRODID = "-//Blended LMS//Labs calendar 1.0//EN"
CRLF = "\r\n"
MAX_LINE_OCTETS = 75

# --- iCalendar text (pure) -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines escaped; other control
    characters, which TEXT may not hold, dropped."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return _CONTROL.sub("", value)


def fold(line: str) -> str:
    """Fold a content line so that no physical line is longer than 75 octets (§3.1).

    Continuation lines start with one space, which counts towards their 75 octets. A multi-octet UTF-8
    character is never split across lines.
    """
    if len(line.encode("utf-8")) <= MAX_LINE_OCTETS:
        return line
    parts: list[str] = []
    current, size = "", 0
    limit = MAX_LINE_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            parts.append(current)
            current, size = "", 0
            limit = MAX_LINE_OCTETS - 1  # the leading space of a continuation line
        current += char
        size += width
    parts.append(current)
    return (CRLF + " ").join(parts)


def _param_value(value: str) -> str:
    """A parameter value, quoted when it holds a character that would end it."""
    value = value.replace('"', "")
    return f'"{value}"' if any(c in value for c in ":;,") else value


def content_line(name: str, value: str, /, **params: str) -> str:
    """``NAME;PARAM=value:VALUE`` (``value`` must already be escaped where it is TEXT)."""
    head = name + "".join(f";{key.replace('_', '-').upper()}={_param_value(v)}" for key, v in params.items())
    return f"{head}:{value}"


def format_utc(value: datetime) -> str:
    """A UTC DATE-TIME (form #2, with the Z)."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def format_local(value: datetime) -> str:
    """A local DATE-TIME without zone letter (used with a TZID parameter)."""
    return value.strftime("%Y%m%dT%H%M%S")


def format_offset(offset: timedelta) -> str:
    """A UTC-OFFSET: ``+0800``, ``-0330`` (seconds only when there are some)."""
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _offset_at(zone: ZoneInfo, ts: int) -> timedelta:
    offset = datetime.fromtimestamp(ts, zone).utcoffset()
    assert offset is not None
    return offset


def zone_transitions(
    zone_name: str, start: datetime, end: datetime
) -> list[tuple[datetime, timedelta, timedelta]]:
    """Every change of the zone's UTC offset in [start, end): (UTC instant, offset before, offset after)."""
    zone = ZoneInfo(zone_name)
    ts, stop = int(start.timestamp()), int(end.timestamp())
    day = 86_400
    offset = _offset_at(zone, ts)
    found = []
    while ts < stop:
        nxt = min(ts + day, stop)
        after = _offset_at(zone, nxt)
        if after != offset:
            lo, hi = ts, nxt  # the offset at lo is the old one, at hi the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_at(zone, mid) == offset:
                    lo = mid
                else:
                    hi = mid
            found.append((datetime.fromtimestamp(hi, UTC), offset, after))
            offset = after
        ts = nxt
    return found


def vtimezone(zone_name: str, first_year: int, last_year: int) -> list[str]:
    """A VTIMEZONE for the zone that is right for every local time from ``first_year`` to ``last_year``.

    Built from the zone database: the offset in force when the range begins (an observance with onset
    1970-01-01, as calendar programs expect one that starts before every event), then one observance
    per change of offset inside the range. A zone without daylight saving, like Asia/Shanghai, gets a
    single STANDARD with TZOFFSETFROM = TZOFFSETTO.
    """
    zone = ZoneInfo(zone_name)
    start = datetime(first_year, 1, 1, tzinfo=UTC) - timedelta(days=1)  # local 1 January, in any zone
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)
    lines = ["BEGIN:VTIMEZONE", content_line("TZID", zone_name)]

    def observance(onset: datetime, before: timedelta, after: timedelta, local: datetime) -> list[str]:
        kind = "DAYLIGHT" if local.dst() else "STANDARD"
        block = [
            f"BEGIN:{kind}",
            f"DTSTART:{format_local(onset)}",
            f"TZOFFSETFROM:{format_offset(before)}",
            f"TZOFFSETTO:{format_offset(after)}",
        ]
        if local.tzname():
            block.append(content_line("TZNAME", escape_text(local.tzname() or "")))
        return [*block, f"END:{kind}"]

    initial = _offset_at(zone, int(start.timestamp()))
    lines += observance(datetime(1970, 1, 1), initial, initial, start.astimezone(zone))
    for at, before, after in zone_transitions(zone_name, start, end):
        # The onset is written in the local time that the change replaces (RFC 5545 §3.6.5).
        lines += observance((at + before).replace(tzinfo=None), before, after, at.astimezone(zone))
    lines.append("END:VTIMEZONE")
    return lines


@dataclass(frozen=True)
class CalendarEvent:
    """One VEVENT: times are aware; ``zone`` is the IANA zone DTSTART and DTEND are written in."""

    uid: str
    starts_at: datetime
    ends_at: datetime
    zone: str
    summary: str
    location: str = ""
    description: str = ""
    sequence: int = 0
    status: str = "CONFIRMED"  # CONFIRMED | TENTATIVE | CANCELLED


def render_calendar(
    events: Iterable[CalendarEvent],
    *,
    name: str,
    now: datetime,
    default_zone: str,
    refresh: timedelta = timedelta(hours=1),
) -> str:
    """A complete VCALENDAR (METHOD:PUBLISH) with one VTIMEZONE per zone used, CRLF line ends."""
    events = list(events)
    zones = sorted({e.zone for e in events} | {default_zone})
    years = [e.starts_at.astimezone(ZoneInfo(e.zone)).year for e in events] or [now.year]
    first, last = min(years), max(years)
    refresh_minutes = int(refresh.total_seconds() // 60)
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        content_line("NAME", escape_text(name)),
        content_line("X-WR-CALNAME", escape_text(name)),
        content_line("X-WR-TIMEZONE", default_zone),
        content_line("REFRESH-INTERVAL", f"PT{refresh_minutes}M", value="DURATION"),
        f"X-PUBLISHED-TTL:PT{refresh_minutes}M",
    ]
    for zone in zones:
        lines += vtimezone(zone, first, last)
    stamp = format_utc(now)
    for event in events:
        tz = ZoneInfo(event.zone)
        lines += [
            "BEGIN:VEVENT",
            content_line("UID", event.uid),
            f"DTSTAMP:{stamp}",
            content_line("DTSTART", format_local(event.starts_at.astimezone(tz)), tzid=event.zone),
            content_line("DTEND", format_local(event.ends_at.astimezone(tz)), tzid=event.zone),
            content_line("SUMMARY", escape_text(event.summary)),
        ]
        if event.location:
            lines.append(content_line("LOCATION", escape_text(event.location)))
        if event.description:
            lines.append(content_line("DESCRIPTION", escape_text(event.description)))
        lines += [f"SEQUENCE:{event.sequence}", f"STATUS:{event.status}", "TRANSP:OPAQUE", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + CRLF for line in lines)


# --- feeds (database) ----------------------------------------------------------------------------------

FEED_PATH_PREFIX = "/labs/feeds/"
#: meetings that ended longer ago than this are left out of feeds
FEED_PAST_DAYS = 60
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class FeedOwner:
    """What an active token opens: a user's or a room's feed."""

    token_id: int
    user_id: int | None
    room_id: int | None


def _secret() -> bytes:

    return str(current_app.config["SECRET_KEY"]).encode()


def token_text(row: FeedToken) -> str:
    """The token in the feed's address: an HMAC of the row's nonce under SECRET_KEY (so changing the key
    changes every feed address)."""
    digest = hmac.new(_secret(), f"labs-feed:{row.nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_url(row: FeedToken) -> str:
    """The https (or http) address of a feed; ``webcal_url`` gives the same one for phone calendars."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}{FEED_PATH_PREFIX}{token_text(row)}.ics"


def webcal_url(url: str) -> str:
    return "webcal://" + url.split("://", 1)[1]


def site_domain() -> str:
    """The host name of PUBLIC_URL, used in event UIDs."""
    return urlsplit(current_app.config["PUBLIC_URL"]).hostname or "localhost"


def _owner_filter(user: User | None, room: Room | None) -> ColumnElement[bool]:
    if user is not None and room is None:
        return FeedToken.user_id == user.id
    if room is not None and user is None:
        return FeedToken.room_id == room.id
    raise ValueError("a feed belongs to a user or to a room")


def active_feed_token(*, user: User | None = None, room: Room | None = None) -> FeedToken | None:
    """The newest unrevoked token of the user's or room's feed, or None."""
    return db.session.scalar(
        select(FeedToken)
        .where(_owner_filter(user, room), FeedToken.revoked_at.is_(None))
        .order_by(FeedToken.created_at.desc(), FeedToken.id.desc())
        .limit(1)
    )


def revoke_feed_tokens(
    *,
    user: User | None = None,
    room: Room | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> int:
    """Stop every address of the feed from working; says how many were active."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(FeedToken).where(_owner_filter(user, room), FeedToken.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = now
    if rows:
        audit.record("labs.feed_revoked", actor, user or room, tokens=[r.id for r in rows])
    db.session.flush()
    return len(rows)


def issue_feed_token(
    *, user: User | None = None, room: Room | None = None, actor: User | None = None
) -> FeedToken:
    """A new address for the feed; any older one stops working."""
    revoke_feed_tokens(user=user, room=room, actor=actor)
    row = FeedToken(
        user_id=user.id if user is not None else None,
        room_id=room.id if room is not None else None,
        nonce=secrets.token_urlsafe(32),
        token_hash="",
    )
    row.token_hash = hash_token(token_text(row))
    db.session.add(row)
    db.session.flush()
    audit.record("labs.feed_issued", actor, user or room, token_id=row.id)
    return row


def feed_url_for(user: User) -> str:
    """The address of the user's calendar feed, made on first use (flushes; the caller commits)."""
    row = active_feed_token(user=user) or issue_feed_token(user=user, actor=user)
    return feed_url(row)


def room_feed_url_for(room: Room, actor: User | None = None) -> str:
    """The address of the room's calendar feed, made on first use (flushes; the caller commits)."""
    row = active_feed_token(room=room) or issue_feed_token(room=room, actor=actor)
    return feed_url(row)


def find_feed(token: str) -> FeedOwner | None:
    """What an address's token opens, or None when it is unknown, revoked or its user is deactivated."""
    if not TOKEN_RE.match(token):
        return None
    row = db.session.scalar(select(FeedToken).where(FeedToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(token_text(row), token):  # the key changed since it was issued
        return None
    if row.user_id is not None:
        user = db.session.get(User, row.user_id)
        if user is None or not user.active:
            return None
    return FeedOwner(row.id, row.user_id, row.room_id)


def location_of(room: Room) -> str:
    """Site name and address, then the room."""
    site = room.site
    parts = [site.name, site.address, f"{room.name} ({room.code})"]
    return ", ".join(p.strip() for p in parts if p and p.strip())


def _event(
    occurrence: LabOccurrence, titles: dict[int, str], place: BookingState | None = None, reason: str = ""
) -> CalendarEvent:
    """The VEVENT of a meeting; ``place`` is the reader's booking state (booked / waitlisted) if any,
    ``reason`` why the meeting was cancelled."""
    session = occurrence.session
    cohort = session.cohort
    title = titles.get(session.id) or session.unit_key
    summary = f"{title} · {cohort.name}"
    status = "CONFIRMED"
    description = [
        _("Cohort: %(name)s (%(code)s)", name=cohort.name, code=cohort.code),
        _("Trainers: %(names)s", names=", ".join(t.real_name for t in session.trainers) or "—"),
    ]
    if occurrence.status == OccurrenceStatus.CANCELLED:
        summary = _("Cancelled: %(summary)s", summary=summary)
        status = "CANCELLED"
        description.insert(
            0,
            _("This meeting was cancelled: %(reason)s", reason=reason)
            if reason
            else _("This meeting was cancelled."),
        )
    elif place == BookingState.WAITLISTED:
        summary = _("Waiting list: %(summary)s", summary=summary)
        status = "TENTATIVE"
        description.append(_("You are on the waiting list for this meeting."))
    elif place == BookingState.BOOKED:
        description.append(_("You have a seat in this meeting."))
    else:
        description.append(
            _("Seats booked: %(booked)d of %(seats)d", booked=occurrence.booked_count, seats=occurrence.seats)
        )
    return CalendarEvent(
        uid=f"labs-occurrence-{occurrence.id}@{site_domain()}",
        starts_at=occurrence.starts_at,
        ends_at=occurrence.ends_at,
        zone=occurrence.room.site.timezone,
        summary=summary,
        location=location_of(occurrence.room),
        description="\n".join(description),
        sequence=occurrence.sequence,
        status=status,
    )


@dataclass(frozen=True)
class FeedMeeting:
    """A meeting in a user's feed: the user's place in it (None: the user teaches it) and, when the
    meeting was cancelled, the reason given to the trainees who had booked."""

    occurrence: LabOccurrence
    place: BookingState | None = None
    reason: str = ""


def user_feed_meetings(user: User, now: datetime) -> list[FeedMeeting]:
    """The meetings of a user's feed: those the user booked or waits for as a trainee, and those of the
    sessions the user teaches. Cancelled meetings stay (STATUS:CANCELLED) so phone calendars drop them,
    including the ones whose bookings were cancelled with the meeting; a booking the trainee cancelled
    leaves the feed."""
    since = now - timedelta(days=FEED_PAST_DAYS)
    found: dict[int, FeedMeeting] = {}
    rows = db.session.execute(
        select(LabOccurrence, Booking)
        .join(Booking, Booking.occurrence_id == LabOccurrence.id)
        .where(
            Booking.user_id == user.id,
            LabOccurrence.ends_at >= since,
            or_(Booking.state != BookingState.CANCELLED, LabOccurrence.status == OccurrenceStatus.CANCELLED),
        )
    ).all()
    for occurrence, booking in rows:
        details = booking.details or {}
        if booking.state != BookingState.CANCELLED:
            found[occurrence.id] = FeedMeeting(occurrence, booking.state)
        elif "occurrence_cancelled_at" in details:  # cancelled with the meeting, not by the trainee
            before = details.get("state_before")
            place = BookingState.WAITLISTED if before == BookingState.WAITLISTED else BookingState.BOOKED
            found[occurrence.id] = FeedMeeting(occurrence, place, str(details.get("cancel_reason") or ""))
    taught = db.session.scalars(
        select(LabOccurrence)
        .join(LabSession, LabSession.id == LabOccurrence.session_id)
        .join(session_trainer, session_trainer.c.session_id == LabSession.id)
        .where(session_trainer.c.user_id == user.id, LabOccurrence.ends_at >= since)
    ).all()
    for occurrence in taught:
        found.setdefault(occurrence.id, FeedMeeting(occurrence))
    return sorted(found.values(), key=lambda m: (m.occurrence.starts_at, m.occurrence.id))


def room_feed_meetings(room: Room, now: datetime) -> list[LabOccurrence]:
    """The room's meetings (cancelled ones included) that ended at most FEED_PAST_DAYS ago."""
    since = now - timedelta(days=FEED_PAST_DAYS)
    return list(
        db.session.scalars(
            select(LabOccurrence)
            .where(LabOccurrence.room_id == room.id, LabOccurrence.ends_at >= since)
            .order_by(LabOccurrence.starts_at, LabOccurrence.id)
        )
    )


def _default_zone() -> str:

    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def user_calendar(user: User, now: datetime | None = None) -> str:
    """The text of the user's feed, in the user's language."""
    now = now or utcnow()
    meetings = user_feed_meetings(user, now)
    locale = user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        titles = lab_titles({m.occurrence.session for m in meetings}, locale)
        events = [_event(m.occurrence, titles, m.place, m.reason) for m in meetings]
        name = _("Labs: %(name)s", name=user.real_name)
    zone = user.timezone if is_valid_timezone(user.timezone) else _default_zone()
    return render_calendar(events, name=name, now=now, default_zone=zone)


def room_calendar(room: Room, now: datetime | None = None) -> str:
    """The text of the room's feed, in the site's default language."""
    now = now or utcnow()
    meetings = room_feed_meetings(room, now)
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        titles = lab_titles({o.session for o in meetings}, locale)
        events = [_event(o, titles) for o in meetings]
        name = _("Room %(code)s · %(site)s", code=room.code, site=room.site.name)
    return render_calendar(events, name=name, now=now, default_zone=room.site.timezone)


def calendar_for_token(token: str, now: datetime | None = None) -> str | None:
    """The feed an address opens, or None (unknown or revoked token)."""
    owner = find_feed(token)
    if owner is None:
        return None
    if owner.user_id is not None:
        user = db.session.get(User, owner.user_id)
        return user_calendar(user, now) if user is not None else None
    room = db.session.get(Room, owner.room_id)
    return room_calendar(room, now) if room is not None else None
