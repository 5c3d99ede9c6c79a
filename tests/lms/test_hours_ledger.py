import pytest

from lms import signals
from lms.extensions import db
from lms.models import Delivery, HoursEntry, HoursSource, LedgerIsAppendOnly
from lms.services.hours import credit_hours, hours_summary


def test_signals_from_plugins_credit_the_ledger_with_evidence(app, people, dummy_cohort):
    trainee = people["trainee"]
    signals.lesson_completed.send(
        app,
        user=trainee,
        cohort=dummy_cohort,
        unit_id="m01-l01",
        minutes=50,
        evidence={"active_seconds": 1900},
    )
    signals.lab_attendance_recorded.send(
        app,
        user=trainee,
        cohort=dummy_cohort,
        occurrence_id=7,
        minutes=240,
        evidence={"checked_in_at": "2026-11-22T01:02:03Z"},
    )
    db.session.commit()
    summary = hours_summary(trainee, dummy_cohort)
    assert (summary.online_minutes, summary.offline_minutes) == (50, 240)
    assert summary.required_minutes == 64 * 60
    entry = db.session.query(HoursEntry).filter_by(source=HoursSource.ONLINE_UNIT).one()
    assert entry.evidence == {"active_seconds": 1900}


def test_crediting_the_same_thing_twice_counts_once(app, people, dummy_cohort):
    for _ in range(2):
        credit_hours(
            people["trainee"],
            dummy_cohort,
            source=HoursSource.ONLINE_UNIT,
            source_ref="u1",
            delivery=Delivery.ONLINE,
            minutes=30,
            evidence={},
        )
    db.session.commit()
    assert hours_summary(people["trainee"], dummy_cohort).online_minutes == 30


def test_ledger_lines_cannot_be_changed_or_deleted(app, people, dummy_cohort):
    entry = credit_hours(
        people["trainee"],
        dummy_cohort,
        source=HoursSource.ONLINE_UNIT,
        source_ref="u2",
        delivery=Delivery.ONLINE,
        minutes=30,
        evidence={},
    )
    db.session.commit()
    entry.minutes = 3000
    with pytest.raises(LedgerIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(HoursEntry, entry.id))
    with pytest.raises(LedgerIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    assert db.session.get(HoursEntry, entry.id).minutes == 30


def test_corrections_are_new_negative_adjustments(app, people, dummy_cohort):
    credit_hours(
        people["trainee"],
        dummy_cohort,
        source=HoursSource.ONLINE_UNIT,
        source_ref="u3",
        delivery=Delivery.ONLINE,
        minutes=60,
        evidence={},
    )
    credit_hours(
        people["trainee"],
        dummy_cohort,
        source=HoursSource.ADJUSTMENT,
        source_ref="fix-1",
        delivery=Delivery.ONLINE,
        minutes=-15,
        evidence={"reason": "duplicate reading time"},
        recorded_by=people["admin"],
    )
    db.session.commit()
    assert hours_summary(people["trainee"], dummy_cohort).online_minutes == 45
