"""Signals of the labs plugin (its own namespace; the core hears attendance through lms.signals)."""

from blinker import Namespace

_signals = Namespace()

booking_created = _signals.signal("booking-created")
"""Sent when a trainee books or joins the waiting list. Sender: the app. Kwargs: ``booking`` (Booking)."""

booking_promoted = _signals.signal("booking-promoted")
"""Sent when a waiting-list booking gets a seat after a cancellation. Sender: the app. Kwargs:
``booking`` (Booking)."""

booking_cancelled = _signals.signal("booking-cancelled")
"""Sent when a booking is cancelled. Sender: the app. Kwargs: ``booking`` (Booking), ``actor`` (User)."""
