"""iCalendar feeds: RFC 5545 text read back by a strict parser, the feeds' contents, and their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from labs import calendar
from labs.models import Booking, BookingState, OccurrenceStatus
from labs.services import book_seat, create_lab_session
from lms.extensions import db
from lms.models import AuditLog, Role
from lms.services import cohorts
from lms.timeutil import utcnow

NEXT_SATURDAY = (datetime.now() + timedelta(days=(5 - datetime.now().weekday()) % 7 + 7)).replace(
    hour=9, minute=0, second=0, microsecond=0
)

# --- a strict reader of what we write ------------------------------------------------------------------

NAME = r"[A-Za-z0-9-]+"
PARAM = rf'{NAME}=(?:"[^"\x00-\x1f]*"|[^";:,\x00-\x1f]*)'
CONTENT_LINE = re.compile(
    rf"^(?P<name>{NAME})(?P<params>(?:;{PARAM})*):(?P<value>[^\x00-\x08\x0a-\x1f\x7f]*)$"
)
REQUIRED_EVENT = ("UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "SEQUENCE", "STATUS")


@dataclass
class Prop:
    name: str
    params: dict[str, str]
    value: str


@dataclass
class Component:
    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def one(self, name: str) -> Prop:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} has {len(found)} {name}"
        return found[0]

    def value(self, name: str) -> str:
        return self.one(name).value

    def text(self, name: str) -> str:
        return unescape(self.value(name))

    def kids(self, name: str) -> list[Component]:
        return [c for c in self.children if c.name == name]


def unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        if char != "\\":
            assert char not in ",;", f"unescaped {char!r} in TEXT {value!r}"
            out.append(char)
            continue
        following = next(chars)
        assert following in "\\;,nN", f"bad escape \\{following} in {value!r}"
        out.append("\n" if following in "nN" else following)
    return "".join(out)


def parse(data: bytes) -> Component:
    """Parse iCalendar bytes, failing on anything RFC 5545 does not allow in what we produce."""
    assert data.endswith(b"\r\n")
    physical = data[:-2].split(b"\r\n")
    lines: list[str] = []
    for raw in physical:
        assert b"\r" not in raw and b"\n" not in raw, "bare CR or LF"
        assert len(raw) <= 75, f"line of {len(raw)} octets: {raw!r}"
        text = raw.decode("utf-8")  # raises if a fold split a character
        if text.startswith((" ", "\t")):
            assert lines, "continuation line first"
            lines[-1] += text[1:]
        else:
            lines.append(text)
    stack = [Component("ROOT")]
    for line in lines:
        match = CONTENT_LINE.match(line)
        assert match, f"not a content line: {line!r}"
        params = {}
        for param in re.findall(rf";({PARAM})", match["params"]):
            key, _sep, val = param.partition("=")
            params[key.upper()] = val.strip('"')
        name, value = match["name"].upper(), match["value"]
        if name == "BEGIN":
            stack.append(Component(value))
        elif name == "END":
            done = stack.pop()
            assert done.name == value, f"END:{value} closes {done.name}"
            stack[-1].children.append(done)
        else:
            stack[-1].props.append(Prop(name, params, value))
    assert len(stack) == 1, "unclosed component"
    (root,) = stack[0].children
    assert root.name == "VCALENDAR"
    return root


def check_calendar(cal: Component) -> None:
    """The properties every feed must have, and VEVENTs that refer to VTIMEZONEs it carries."""
    assert cal.value("VERSION") == "2.0"
    assert cal.value("PRODID")
    assert cal.value("CALSCALE") == "GREGORIAN"
    assert cal.value("METHOD") == "PUBLISH"
    zones = {z.value("TZID"): z for z in cal.kids("VTIMEZONE")}
    for zone in zones.values():
        observances = zone.kids("STANDARD") + zone.kids("DAYLIGHT")
        assert observances
        for observance in observances:
            assert re.fullmatch(r"\d{8}T\d{6}", observance.value("DTSTART"))
            assert re.fullmatch(r"[+-]\d{4}(\d{2})?", observance.value("TZOFFSETFROM"))
            assert re.fullmatch(r"[+-]\d{4}(\d{2})?", observance.value("TZOFFSETTO"))
    uids = set()
    for event in cal.kids("VEVENT"):
        for name in REQUIRED_EVENT:
            event.one(name)
        assert re.fullmatch(r"\d{8}T\d{6}Z", event.value("DTSTAMP"))
        for name in ("DTSTART", "DTEND"):
            prop = event.one(name)
            assert prop.params["TZID"] in zones, f"{name} refers to a zone the feed does not define"
            assert re.fullmatch(r"\d{8}T\d{6}", prop.value)
        assert event.value("DTEND") > event.value("DTSTART")
        assert event.value("STATUS") in ("CONFIRMED", "TENTATIVE", "CANCELLED")
        assert int(event.value("SEQUENCE")) >= 0
        assert event.value("UID") not in uids
        uids.add(event.value("UID"))


def local(prop: Prop) -> datetime:
    return datetime.strptime(prop.value, "%Y%m%dT%H%M%S").replace(tzinfo=ZoneInfo(prop.params["TZID"]))


# --- the writer on its own -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a,b;c", "a\\,b\\;c"),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines\r\nthree\rfour", "two\\nlines\\nthree\\nfour"),
        ("bell\x07tab\tkept", "belltab\tkept"),
        ("实训楼, 3 层; A301", "实训楼\\, 3 层\\; A301"),
    ],
)
def test_text_is_escaped(raw, escaped):
    assert calendar.escape_text(raw) == escaped


@pytest.mark.parametrize(
    "line",
    [
        "SUMMARY:" + "人工智能工程技术人员实训" * 12,  # 3-octet characters
        "SUMMARY:" + "a" * 67,  # exactly 75 octets: no fold
        "SUMMARY:" + "a" * 68,
        "LOCATION:" + "x" * 73 + "实训楼🧪" * 9,  # 3- and 4-octet characters across the boundary
    ],
)
def test_folding_keeps_lines_within_75_octets_and_never_splits_a_character(line):
    folded = calendar.fold(line)
    physical = folded.encode("utf-8").split(b"\r\n")
    assert all(len(p) <= 75 for p in physical)
    assert all(p.startswith(b" ") for p in physical[1:])
    for p in physical:
        p.decode("utf-8")
    assert "".join([physical[0].decode()] + [p.decode()[1:] for p in physical[1:]]) == line
    assert (len(physical) == 1) == (len(line.encode()) <= 75)


def test_offsets_are_formatted_with_sign_and_seconds_only_when_needed():
    assert calendar.format_offset(timedelta(hours=8)) == "+0800"
    assert calendar.format_offset(timedelta(hours=-3, minutes=-30)) == "-0330"
    assert calendar.format_offset(timedelta(hours=5, minutes=45)) == "+0545"
    assert calendar.format_offset(timedelta(hours=8, minutes=5, seconds=43)) == "+080543"


def test_shanghai_has_one_standard_observance():
    lines = calendar.vtimezone("Asia/Shanghai", 2026, 2027)
    cal = parse(("\r\n".join(["BEGIN:VCALENDAR", *lines, "END:VCALENDAR"]) + "\r\n").encode())
    (zone,) = cal.kids("VTIMEZONE")
    assert zone.value("TZID") == "Asia/Shanghai"
    assert zone.kids("DAYLIGHT") == []
    (standard,) = zone.kids("STANDARD")
    assert standard.value("TZOFFSETFROM") == standard.value("TZOFFSETTO") == "+0800"


def test_zone_with_daylight_saving_lists_each_change_in_the_local_time_it_replaces():
    lines = calendar.vtimezone("Europe/Berlin", 2026, 2026)
    cal = parse(("\r\n".join(["BEGIN:VCALENDAR", *lines, "END:VCALENDAR"]) + "\r\n").encode())
    (zone,) = cal.kids("VTIMEZONE")
    (summer,) = zone.kids("DAYLIGHT")
    assert (summer.value("DTSTART"), summer.value("TZOFFSETFROM"), summer.value("TZOFFSETTO")) == (
        "20260329T020000",
        "+0100",
        "+0200",
    )
    winter = [s for s in zone.kids("STANDARD") if s.value("DTSTART").startswith("2026")]
    assert [(s.value("DTSTART"), s.value("TZOFFSETFROM"), s.value("TZOFFSETTO")) for s in winter] == [
        ("20261025T030000", "+0200", "+0100")
    ]


def test_calendar_text_reads_back():
    start = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    event = calendar.CalendarEvent(
        uid="labs-occurrence-7@lms.example.cn",
        starts_at=start,
        ends_at=start + timedelta(hours=3),
        zone="Asia/Shanghai",
        summary="深度学习实验：图像分类, 第 2 次; 带 GPU",
        location="东南理工大学实训楼, 江苏省南京市玄武区; A301",
        description="第一行\n第二行 \\ 结束",
        sequence=3,
        status="CANCELLED",
    )
    text = calendar.render_calendar(
        [event], name="实训 · 张三", now=start - timedelta(days=1), default_zone="Asia/Shanghai"
    )
    cal = parse(text.encode())
    check_calendar(cal)
    (vevent,) = cal.kids("VEVENT")
    assert vevent.text("SUMMARY") == event.summary
    assert vevent.text("LOCATION") == event.location
    assert vevent.text("DESCRIPTION") == event.description
    assert local(vevent.one("DTSTART")) == start
    assert vevent.one("DTSTART").value == "20261205T090000"
    assert (vevent.value("SEQUENCE"), vevent.value("STATUS")) == ("3", "CANCELLED")
    assert vevent.value("DTSTAMP") == "20261204T010000Z"


# --- feeds from the database ---------------------------------------------------------------------------


@pytest.fixture
def lab(app, people, dummy_cohort, create_site, create_room):
    """A weekly lab (three Saturdays) at a site whose address needs escaping; the trainee has booked the
    first meeting."""
    site = create_site(code="NJ", address="江苏省南京市玄武区孝陵卫街 200 号, 实训楼; 3 层")
    room = create_room(site=site, code="A301", name="人工智能实训室")
    session = create_lab_session(
        cohort=dummy_cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[people["trainer"]],
        first_start_local=NEXT_SATURDAY,
        duration_minutes=180,
        rrule="FREQ=WEEKLY;BYDAY=SA;COUNT=3",
        title="卷积神经网络图像分类实验（使用 GPU 工作站），请提前十分钟到场并带好学员证",
    )
    book_seat(people["trainee"], session.occurrences[0])
    db.session.commit()
    return session


def test_trainee_feed_has_booked_meetings_with_site_time_and_escaped_place(app, people, lab):
    cal = parse(calendar.user_calendar(people["trainee"]).encode())
    check_calendar(cal)
    (zone,) = cal.kids("VTIMEZONE")
    assert zone.value("TZID") == "Asia/Shanghai"
    (event,) = cal.kids("VEVENT")
    occurrence = lab.occurrences[0]
    assert event.value("UID") == f"labs-occurrence-{occurrence.id}@127.0.0.1"
    assert event.one("DTSTART").params["TZID"] == "Asia/Shanghai"
    assert local(event.one("DTSTART")) == occurrence.starts_at
    assert event.one("DTSTART").value == NEXT_SATURDAY.strftime("%Y%m%dT%H%M%S")
    assert local(event.one("DTEND")) == occurrence.ends_at
    assert event.text("SUMMARY") == f"{lab.title} · {lab.cohort.name}"
    assert event.text("LOCATION") == (
        "东南理工大学实训楼, 江苏省南京市玄武区孝陵卫街 200 号, 实训楼; 3 层, 人工智能实训室 (A301)"
    )
    assert (event.value("SEQUENCE"), event.value("STATUS")) == ("0", "CONFIRMED")


def test_trainer_feed_has_every_meeting_taught_and_room_feed_every_meeting(app, people, lab):
    trainer_cal = parse(calendar.user_calendar(people["trainer"]).encode())
    room_cal = parse(calendar.room_calendar(lab.room).encode())
    for cal in (trainer_cal, room_cal):
        check_calendar(cal)
        assert [e.value("UID").split("@")[0] for e in cal.kids("VEVENT")] == [
            f"labs-occurrence-{o.id}" for o in lab.occurrences
        ]
    first = room_cal.kids("VEVENT")[0]
    assert "1 of 30" in first.text("DESCRIPTION")


def test_unit_title_from_the_course_version_when_the_session_has_none(app, people, lab):
    from lms.models import CourseModule, CourseUnit, CourseVersion, UnitKind

    version = CourseVersion(
        course=lab.cohort.course, version="1", schema_version=1, slug="aiet", content_hash="x" * 64
    )
    module = CourseModule(version=version, key="m03", position=1, title={"zh_CN": "模块三"}, summary={})
    db.session.add(
        CourseUnit(
            version=version,
            module=module,
            key="m03-lab",
            kind=UnitKind.LAB,
            position=1,
            title={"zh_CN": "图像分类实验", "en": "Image classification lab"},
        )
    )
    db.session.flush()
    lab.cohort.course_version_id = version.id
    lab.title = ""
    people["trainee"].locale = "zh_CN"
    db.session.commit()
    (event,) = parse(calendar.user_calendar(people["trainee"]).encode()).kids("VEVENT")
    assert event.text("SUMMARY") == f"图像分类实验 · {lab.cohort.name}"
    people["trainee"].locale = "en"
    db.session.commit()
    (event,) = parse(calendar.user_calendar(people["trainee"]).encode()).kids("VEVENT")
    assert event.text("SUMMARY") == f"Image classification lab · {lab.cohort.name}"


def test_cancelled_meeting_stays_in_feeds_with_higher_sequence_and_cancelled_status(app, people, lab):
    from labs import services

    occurrence = lab.occurrences[0]
    uid = f"labs-occurrence-{occurrence.id}@127.0.0.1"
    if hasattr(services, "cancel_occurrence"):
        services.cancel_occurrence(occurrence, people["admin"], reason="停电检修")
    else:  # pragma: no cover - before the scheduling pages existed
        occurrence.status, occurrence.sequence = OccurrenceStatus.CANCELLED, occurrence.sequence + 1
    db.session.commit()
    for user in ("trainee", "trainer"):
        cal = parse(calendar.user_calendar(people[user]).encode())
        check_calendar(cal)
        event = next(e for e in cal.kids("VEVENT") if e.value("UID") == uid)
        assert (event.value("SEQUENCE"), event.value("STATUS")) == ("1", "CANCELLED"), user
    room_event = parse(calendar.room_calendar(lab.room).encode()).kids("VEVENT")[0]
    assert (room_event.value("UID"), room_event.value("SEQUENCE"), room_event.value("STATUS")) == (
        uid,
        "1",
        "CANCELLED",
    )


def test_booking_the_trainee_cancels_leaves_the_feed_and_waiting_place_is_tentative(
    app, people, dummy_cohort, create_room, create_user
):
    from labs.services import cancel_booking

    room = create_room(code="S2", seats=1)
    session = create_lab_session(
        cohort=dummy_cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[],
        first_start_local=NEXT_SATURDAY,
        duration_minutes=120,
        actor=people["admin"],
        override_reason="small room on purpose",
    )
    other = create_user(Role.TRAINEE, username="second")
    cohorts.enroll(other, dummy_cohort)
    occurrence = session.occurrences[0]
    first = book_seat(people["trainee"], occurrence)
    waiting = book_seat(other, occurrence)
    assert waiting.state == BookingState.WAITLISTED
    db.session.commit()
    (event,) = parse(calendar.user_calendar(other).encode()).kids("VEVENT")
    assert event.value("STATUS") == "TENTATIVE"
    cancel_booking(first, actor=people["trainee"])
    db.session.commit()
    assert parse(calendar.user_calendar(people["trainee"]).encode()).kids("VEVENT") == []
    (event,) = parse(calendar.user_calendar(other).encode()).kids("VEVENT")
    assert event.value("STATUS") == "CONFIRMED"


def test_meetings_long_past_are_left_out(app, people, lab):
    later = lab.occurrences[0].ends_at + timedelta(days=calendar.FEED_PAST_DAYS + 1)
    assert parse(calendar.user_calendar(people["trainee"], now=later).encode()).kids("VEVENT") == []


def test_site_in_a_zone_with_daylight_saving(app, people, dummy_cohort, create_site, create_room):
    site = create_site(code="BER", timezone="Europe/Berlin")
    room = create_room(site=site, code="B1")
    summer_day = datetime(utcnow().year + 1, 7, 4, 10, 0)  # a Saturday in July next year, local time
    create_lab_session(
        cohort=dummy_cohort,
        unit_key="m03-lab",
        room=room,
        trainers=[people["trainer"]],
        first_start_local=summer_day,
        duration_minutes=60,
    )
    db.session.commit()
    cal = parse(calendar.room_calendar(room).encode())
    check_calendar(cal)
    (zone,) = cal.kids("VTIMEZONE")
    assert zone.value("TZID") == "Europe/Berlin" and zone.kids("DAYLIGHT")
    (event,) = cal.kids("VEVENT")
    assert event.one("DTSTART").value == summer_day.strftime("%Y%m%dT%H%M%S")
    assert local(event.one("DTSTART")).astimezone(UTC).hour == 8


# --- tokens and the pages ------------------------------------------------------------------------------


def _feed_path(url: str) -> str:
    assert url.startswith("http://127.0.0.1:5000/labs/feeds/") and url.endswith(".ics")
    return url.removeprefix("http://127.0.0.1:5000")


def test_feed_url_for_is_stable_until_regenerated(app, people):
    trainee = people["trainee"]
    url = calendar.feed_url_for(trainee)
    db.session.commit()
    assert calendar.feed_url_for(trainee) == url
    calendar.issue_feed_token(user=trainee, actor=trainee)
    db.session.commit()
    assert calendar.feed_url_for(trainee) != url


def test_feed_address_works_without_signing_in_until_revoked(app, client, auth, people, lab):
    auth.login(people["trainee"].username)
    page = client.get("/labs/feeds/mine").get_data(as_text=True)
    assert "/labs/feeds/mine/regenerate" in page and ".ics" not in page
    response = auth.post("/labs/feeds/mine/regenerate", form_page="/labs/feeds/mine")
    assert response.status_code == 302
    page = client.get("/labs/feeds/mine").get_data(as_text=True)
    (url,) = set(re.findall(r"http://127\.0\.0\.1:5000/labs/feeds/[A-Za-z0-9_-]+\.ics", page))
    assert "webcal://127.0.0.1:5000/labs/feeds/" in page
    auth.logout()

    feed = client.get(_feed_path(url))
    assert feed.status_code == 200
    assert feed.content_type == "text/calendar; charset=utf-8"
    assert feed.headers["Cache-Control"].startswith("private")
    events = parse(feed.get_data()).kids("VEVENT")
    assert [e.value("UID") for e in events] == [f"labs-occurrence-{lab.occurrences[0].id}@127.0.0.1"]

    auth.login(people["trainee"].username)
    auth.post("/labs/feeds/mine/regenerate", form_page="/labs/feeds/mine")
    page = client.get("/labs/feeds/mine").get_data(as_text=True)
    (new_url,) = set(re.findall(r"http://127\.0\.0\.1:5000/labs/feeds/[A-Za-z0-9_-]+\.ics", page))
    assert new_url != url
    assert client.get(_feed_path(url)).status_code == 404
    assert client.get(_feed_path(new_url)).status_code == 200

    auth.post("/labs/feeds/mine/revoke", form_page="/labs/feeds/mine")
    assert client.get(_feed_path(new_url)).status_code == 404
    trail = db.session.scalars(
        select(AuditLog).where(AuditLog.action.like("labs.feed_%")).order_by(AuditLog.id)
    ).all()
    assert [(a.action, a.target_type, a.target_id) for a in trail] == [
        ("labs.feed_issued", "User", str(people["trainee"].id)),
        ("labs.feed_revoked", "User", str(people["trainee"].id)),
        ("labs.feed_issued", "User", str(people["trainee"].id)),
        ("labs.feed_revoked", "User", str(people["trainee"].id)),
    ]


@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 200, "..%2F..%2Fetc"])
def test_unknown_tokens_are_not_found(app, client, token):
    assert client.get(f"/labs/feeds/{token}.ics").status_code == 404


def test_feed_of_a_deactivated_user_is_not_found(app, client, people):
    url = calendar.feed_url_for(people["trainee"])
    db.session.commit()
    assert client.get(_feed_path(url)).status_code == 200
    people["trainee"].active = False
    db.session.commit()
    assert client.get(_feed_path(url)).status_code == 404


def test_changing_the_secret_key_retires_every_address(app, client, people):
    url = calendar.feed_url_for(people["trainee"])
    db.session.commit()
    app.config["SECRET_KEY"] = "another-secret"
    assert client.get(_feed_path(url)).status_code == 404


def test_room_feed_pages_are_for_admins_of_the_rooms_site(
    app, client, auth, people, lab, create_user, create_institution
):
    room_path = f"/labs/feeds/rooms/{lab.room.id}"
    other_base = create_institution(code="ELSEWHERE")
    other_admin = create_user(Role.ADMIN, institution=other_base, username="admin-elsewhere")
    local_admin = create_user(Role.ADMIN, institution=lab.room.site.institution, username="admin-here")
    db.session.commit()

    auth.login(other_admin.username)
    assert client.get(room_path).status_code == 404
    assert auth.post(f"{room_path}/regenerate").status_code == 404
    assert "A301" not in client.get("/labs/feeds/mine").get_data(as_text=True)
    auth.logout()

    auth.login(local_admin.username)
    assert f'href="{room_path}"' in client.get("/labs/feeds/mine").get_data(as_text=True)
    assert auth.post(f"{room_path}/regenerate", form_page=room_path).status_code == 302
    page = client.get(room_path).get_data(as_text=True)
    (url,) = set(re.findall(r"http://127\.0\.0\.1:5000/labs/feeds/[A-Za-z0-9_-]+\.ics", page))
    auth.logout()
    feed = parse(client.get(_feed_path(url)).get_data())
    assert len(feed.kids("VEVENT")) == 3

    auth.login(local_admin.username)
    auth.post(f"{room_path}/revoke", form_page=room_path)
    assert client.get(_feed_path(url)).status_code == 404
    assert db.session.query(Booking).count() == 1  # nothing else was touched
