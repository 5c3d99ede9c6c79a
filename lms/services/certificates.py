"""Training-completion certificates (培训合格证书): issue when the rules hold, revoke with an audit line,
look up by serial for the public verification page, and render the PDF (WeasyPrint, Noto CJK fonts)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lms import signals
from lms.completion import Checklist, CompletionRules
from lms.extensions import db
from lms.models import Certificate, Cohort, User
from lms.services import DomainError, audit
from lms.timeutil import utcnow

#: Serial letters: no 0/O or 1/I, so a serial read off paper is typed back right.
SERIAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SERIAL_RANDOM_LENGTH = 8
MAX_SERIAL_LENGTH = 40


class CertificateError(DomainError):
    """A certificate cannot be changed that way."""


def new_serial(course_code: str, year: int) -> str:
    """E.g. ``AIET-P-2026-7KQ2M9XD``: course, year, and eight random letters (not guessable in sequence)."""
    tail = "".join(secrets.choice(SERIAL_ALPHABET) for _ in range(SERIAL_RANDOM_LENGTH))
    return f"{course_code}-{year}-{tail}"


def issue_certificate(user: User, cohort: Cohort, result: Checklist, rules: CompletionRules) -> Certificate:
    """Issue the trainee's certificate for the cohort (or return the one already issued)."""
    existing = get_certificate(user, cohort)
    if existing is not None:
        return existing
    now = utcnow()
    online, offline = _ledger_minutes(user, cohort)
    certificate = Certificate(
        serial=new_serial(cohort.course.code, now.year),
        user_id=user.id,
        cohort_id=cohort.id,
        issuer_id=cohort.training_base_id,
        holder_name=user.real_name,
        course_code=cohort.course.code,
        course_title={"zh_CN": cohort.course.title, "en": cohort.course.title_en or cohort.course.title},
        level=cohort.course.level.value,
        online_minutes=online,
        offline_minutes=offline,
        evidence={
            "rules": rules.as_dict(),
            "checklist": [
                {
                    "kind": item.kind,
                    "unit": item.unit.key if item.unit else None,
                    "have": item.have,
                    "need": item.need,
                }
                for item in result.items
            ],
        },
        issued_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(certificate)
    except IntegrityError:
        # issued at the same moment by another request: that one stands
        found = get_certificate(user, cohort)
        assert found is not None
        return found
    audit.record("certificate.issued", None, certificate, serial=certificate.serial, user=user.username)
    return certificate


def _ledger_minutes(user: User, cohort: Cohort) -> tuple[int, int]:
    from lms.services.hours import hours_summary

    summary = hours_summary(user, cohort)
    return summary.online_minutes, summary.offline_minutes


def get_certificate(user: User, cohort: Cohort) -> Certificate | None:
    """The trainee's certificate for the cohort, revoked or not; None when there is none."""
    return db.session.scalar(
        select(Certificate).where(Certificate.user_id == user.id, Certificate.cohort_id == cohort.id)
    )


def find_by_serial(serial: str) -> Certificate | None:
    """The certificate with that serial (case and surrounding spaces ignored), or None."""
    cleaned = serial.strip().upper()
    if not cleaned or len(cleaned) > MAX_SERIAL_LENGTH:
        return None
    return db.session.scalar(select(Certificate).where(Certificate.serial == cleaned))


def user_certificates(user: User) -> list[Certificate]:
    """The user's certificates, newest first."""
    return list(
        db.session.scalars(
            select(Certificate).where(Certificate.user_id == user.id).order_by(Certificate.issued_at.desc())
        )
    )


def revoke_certificate(certificate: Certificate, actor: User, reason: str) -> Certificate:
    """Revoke a certificate for the stated reason; the verification page says so from then on."""
    reason = reason.strip()
    if not reason:
        raise CertificateError(_("Give the reason for revoking the certificate."))
    if certificate.revoked:
        raise CertificateError(_("This certificate was revoked already."))
    certificate.revoked_at = utcnow()
    certificate.revoked_by_id = actor.id
    certificate.revoked_reason = reason[:500]
    audit.record("certificate.revoked", actor, certificate, serial=certificate.serial, reason=reason[:500])
    signals.certificate_revoked.send(None, certificate=certificate, actor=actor)
    return certificate


def masked_name(name: str) -> str:
    """The name as a stranger may see it: 张*明, 欧阳** , W*** F***."""
    name = name.strip()
    if not name:
        return ""
    if " " not in name and any(ord(char) > 0x2E80 for char in name):
        if len(name) <= 2:
            return name[0] + "*"
        return name[0] + "*" * (len(name) - 2) + name[-1]
    return " ".join(word[0] + "*" * min(3, max(1, len(word) - 1)) for word in name.split())


def qr_data_uri(data: str) -> str:
    """A QR code of the text as an SVG data URI (for the PDF)."""
    import qrcode
    import qrcode.constants
    from qrcode.image.svg import SvgPathImage

    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=2, image_factory=SvgPathImage
    )
    code.add_data(data)
    code.make(fit=True)
    svg = code.make_image().to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def render_pdf(certificate: Certificate, verify_url: str) -> bytes:
    """The certificate as an A4 landscape PDF, in Chinese and English, with a QR code to ``verify_url``."""
    return render_certificates_pdf([certificate], lambda _serial: verify_url)


def render_certificates_pdf(certificates: list[Certificate], verify_url_for: Callable[[str], str]) -> bytes:
    """Certificates as one PDF, a page each (``verify_url_for(serial)`` gives each QR code's address)."""
    from weasyprint import HTML

    pages = []
    for certificate in certificates:
        url = verify_url_for(certificate.serial)
        pages.append(
            {
                "certificate": certificate,
                "issuer": certificate.issuer,
                "verify_url": url,
                "qr": qr_data_uri(url),
                # the date as it was at the training base
                "issued_on": certificate.issued_at.astimezone(ZoneInfo(certificate.issuer.timezone)).date(),
            }
        )
    html = render_template("lms/completion/certificate_pdf.html", pages=pages)
    return HTML(string=html).write_pdf()
