from datetime import timedelta

from sqlalchemy import select

from labs.models import LabOccurrence, Room
from labs.services import book_seat
from lms.demo import load_demo
from lms.extensions import db
from lms.models import Cohort, User
from lms.timeutil import utcnow


def test_demo_has_labs_in_progress_and_open_for_booking(app):
    load_demo("lms-demo")
    load_demo("lms-demo")  # twice: the schedule is kept, not duplicated
    cohort = db.session.scalar(select(Cohort).where(Cohort.code == "AIET-P-DEMO"))
    occurrences = db.session.scalars(select(LabOccurrence).order_by(LabOccurrence.starts_at)).all()
    assert len(occurrences) == 8
    now = utcnow()
    assert any(o.starts_at <= now < o.ends_at for o in occurrences), "one lab is under way"
    rooms = {r.seats for r in db.session.scalars(select(Room))}
    assert rooms == {30, 12}
    small = [o for o in occurrences if o.seats == 12 and o.starts_at > now + timedelta(hours=2)]
    assert small, "an upcoming meeting in the 12-seat GPU room"
    trainee = db.session.scalar(select(User).where(User.username == "trainee07"))
    booking = book_seat(trainee, small[0])
    assert booking.state == "booked"
    assert {o.session.cohort_id for o in occurrences} == {cohort.id}
