"""Calendar feeds: the public .ics addresses, and pages to show or change a user's or room's address."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from labs import calendar
from labs.models import Room
from labs.reports import administered_rooms, can_administer_room
from lms import access
from lms.extensions import db
from lms.forms import ConfirmForm
from lms.models import Role, User

bp = Blueprint("labs_feeds", __name__, url_prefix="/labs/feeds", template_folder="templates")


def _me() -> User:
    """The signed-in user itself (not the proxy), so that audit lines name its type."""
    return current_user._get_current_object()


def get_room_or_404(room_id: int) -> Room:
    room = db.session.get(Room, room_id)
    if room is None or not can_administer_room(current_user, room):
        abort(404)
    return room


@bp.route("/<feed_token>.ics")
@access.public
def get_feed(feed_token: str):
    text = calendar.calendar_for_token(feed_token)
    if text is None:
        abort(404)
    response = make_response(text)
    response.content_type = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="labs.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/mine")
@access.signed_in
def show_my_feed():
    token = calendar.active_feed_token(user=current_user)
    url = calendar.feed_url(token) if token is not None else None
    return render_template(
        "labs/feeds/mine.html",
        url=url,
        webcal=calendar.webcal_url(url) if url else None,
        rooms=administered_rooms(current_user) if current_user.has_role(Role.ADMIN) else [],
        form=ConfirmForm(),
    )


@bp.route("/mine/regenerate", methods=["POST"])
@access.signed_in
def regenerate_my_feed():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    me = _me()
    had_one = calendar.active_feed_token(user=me) is not None
    calendar.issue_feed_token(user=me, actor=me)
    db.session.commit()
    flash(
        _("New calendar address made; the old one no longer works.")
        if had_one
        else _("Your calendar address is ready."),
        "success",
    )
    return redirect(url_for("labs_feeds.show_my_feed"))


@bp.route("/mine/revoke", methods=["POST"])
@access.signed_in
def revoke_my_feed():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    calendar.revoke_feed_tokens(user=_me(), actor=_me())
    db.session.commit()
    flash(_("Your calendar address no longer works."), "success")
    return redirect(url_for("labs_feeds.show_my_feed"))


@bp.route("/rooms/<int:room_id>")
@access.roles(Role.ADMIN)
def show_room_feed(room_id: int):
    room = get_room_or_404(room_id)
    token = calendar.active_feed_token(room=room)
    url = calendar.feed_url(token) if token is not None else None
    return render_template(
        "labs/feeds/room.html",
        room=room,
        url=url,
        webcal=calendar.webcal_url(url) if url else None,
        form=ConfirmForm(),
    )


@bp.route("/rooms/<int:room_id>/regenerate", methods=["POST"])
@access.roles(Role.ADMIN)
def regenerate_room_feed(room_id: int):
    room = get_room_or_404(room_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    had_one = calendar.active_feed_token(room=room) is not None
    calendar.issue_feed_token(room=room, actor=_me())
    db.session.commit()
    flash(
        _("New calendar address made for room %(code)s; the old one no longer works.", code=room.code)
        if had_one
        else _("The calendar address of room %(code)s is ready.", code=room.code),
        "success",
    )
    return redirect(url_for("labs_feeds.show_room_feed", room_id=room.id))


@bp.route("/rooms/<int:room_id>/revoke", methods=["POST"])
@access.roles(Role.ADMIN)
def revoke_room_feed(room_id: int):
    room = get_room_or_404(room_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    calendar.revoke_feed_tokens(room=room, actor=_me())
    db.session.commit()
    flash(_("The calendar address of room %(code)s no longer works.", code=room.code), "success")
    return redirect(url_for("labs_feeds.show_room_feed", room_id=room.id))
