"""Signals the core sends and listens to. Plugins send theirs through this namespace so the core can
hear them without importing a plugin. Every signal is documented with its sender and keyword arguments.
"""

from blinker import Namespace

_signals = Namespace()

user_created = _signals.signal("user-created")
"""Sent when an account is created. Sender: the app. Kwargs: ``user`` (User), ``actor`` (User | None)."""

enrollment_created = _signals.signal("enrollment-created")
"""Sent when a trainee joins a cohort. Sender: the app. Kwargs: ``enrollment`` (Enrollment)."""

enrollment_withdrawn = _signals.signal("enrollment-withdrawn")
"""Sent when a trainee leaves a cohort. Sender: the app. Kwargs: ``enrollment`` (Enrollment)."""

hours_credited = _signals.signal("hours-credited")
"""Sent after an HoursEntry is added to the ledger. Sender: the app. Kwargs: ``entry`` (HoursEntry)."""

lesson_completed = _signals.signal("lesson-completed")
"""Sent by the curriculum plugin when an online unit is completed. Sender: the app. Kwargs:
``user`` (User), ``cohort`` (Cohort), ``unit_id`` (str), ``minutes`` (int), ``evidence`` (dict)."""

lab_attendance_recorded = _signals.signal("lab-attendance-recorded")
"""Sent by the labs plugin when attendance is marked. Sender: the app. Kwargs: ``user`` (User),
``cohort`` (Cohort), ``occurrence_id`` (int), ``minutes`` (int), ``evidence`` (dict)."""

submission_graded = _signals.signal("submission-graded")
"""Sent by the graders plugin when a submission's score is final (after autograding, or after a trainer
graded the manual cells; again if a trainer changes it). Sender: None. Kwargs: ``user`` (User), ``cohort``
(Cohort), ``assignment_id`` (int), ``unit_key`` (str: the exercise unit), ``score`` (float, after late
penalty and extra credit), ``max_score`` (float)."""

unit_passed = _signals.signal("unit-passed")
"""Sent when a trainee passes a quiz at its pass mark. Sender: None. Kwargs: ``user`` (User), ``cohort``
(Cohort), ``unit_key`` (str), ``score`` (float: percent)."""

training_completed = _signals.signal("training-completed")
"""Sent when a trainee meets the cohort's completion rules for the first time; the certificate is issued
by then. Sender: None. Kwargs: ``enrollment`` (Enrollment), ``certificate`` (Certificate)."""

certificate_revoked = _signals.signal("certificate-revoked")
"""Sent when a certificate is revoked. Sender: None. Kwargs: ``certificate`` (Certificate), ``actor``
(User)."""

demo_loaded = _signals.signal("demo-loaded")
"""Sent by ``lms demo`` after the core's demo rows exist, so plugins add theirs. Sender: the app.
Kwargs: ``cohort`` (Cohort), ``trainers`` (list[User]), ``trainees`` (list[User]), ``password`` (str)."""
