"""Flask-WTF forms of the core pages (CSRF on every one)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FloatField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from lms.models import InstitutionKind, Role


class LoginForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class LocaleForm(FlaskForm):
    locale = SelectField(
        _l("Language"), choices=[SelectChoice("zh_CN", "中文"), SelectChoice("en", "English")]
    )
    next = HiddenField()


class SettingsForm(FlaskForm):
    locale = SelectField(
        _l("Language"), choices=[SelectChoice("zh_CN", "中文"), SelectChoice("en", "English")]
    )
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired()], render_kw={"autocomplete": "current-password"}
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as the option objects WTForms wants."""
    return [SelectChoice(value, label) for value, label in pairs]


def role_choices() -> list[SelectChoice]:
    return choices(
        [
            (Role.TRAINEE.value, _l("Trainee")),
            (Role.TRAINER.value, _l("Trainer")),
            (Role.ASSESSOR.value, _l("Assessor")),
            (Role.ADMIN.value, _l("Administrator")),
        ]
    )


class UserForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    real_name = StringField(_l("Real name"), validators=[DataRequired(), Length(max=100)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])
    employer = StringField(_l("Employer"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"))
    institution_id = SelectField(_l("Institution"), coerce=int)
    password = PasswordField(
        _l("Initial password"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )


class UserEditForm(FlaskForm):
    real_name = StringField(_l("Real name"), validators=[DataRequired(), Length(max=100)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=32)])
    employer = StringField(_l("Employer"), validators=[Optional(), Length(max=200)])


class GrantForm(FlaskForm):
    role = SelectField(_l("Role"))
    institution_id = SelectField(_l("Institution"), coerce=int)


class PasswordResetForm(FlaskForm):
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "new-password"},
    )


class ConfirmForm(FlaskForm):
    """An empty form: a button that posts with a CSRF token."""


class RevokeCertificateForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for revoking (kept in the audit log)"), validators=[DataRequired(), Length(max=500)]
    )


class InstitutionForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=200)])
    name_en = StringField(_l("Name (English)"), validators=[Optional(), Length(max=200)])
    kind = SelectField(
        _l("Kind"),
        choices=[
            SelectChoice(InstitutionKind.TRAINING_BASE.value, _l("Training base")),
            SelectChoice(InstitutionKind.ASSESSMENT_SITE.value, _l("Assessment site")),
            SelectChoice(InstitutionKind.SUPPORT_CENTRE.value, _l("Support centre")),
        ],
    )
    timezone = StringField(_l("Time zone"), default="Asia/Shanghai", validators=[DataRequired()])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])


class CohortForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    course_id = SelectField(_l("Course"), coerce=int)
    training_base_id = SelectField(_l("Training base"), coerce=int)
    starts_on = DateField(_l("Starts on"), validators=[InputRequired()])
    ends_on = DateField(_l("Ends on"), validators=[InputRequired()])
    required_hours = IntegerField(_l("Required hours"), validators=[Optional(), NumberRange(min=0, max=2000)])
    trainer_ids = SelectMultipleField(_l("Trainers"), coerce=int)


class EnrollForm(FlaskForm):
    usernames = StringField(
        _l("Usernames (separated by spaces or commas)"), validators=[DataRequired(), Length(max=5000)]
    )


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
    dry_run = BooleanField(_l("Only check, import nothing"))


class HandoverForm(FlaskForm):
    site = SelectField(_l("Assessment site"), coerce=int, validators=[InputRequired()])


class ExamRoomForm(FlaskForm):
    code = StringField(_l("Room code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Room name"), validators=[DataRequired(), Length(max=200)])
    seats = IntegerField(_l("Seats"), validators=[InputRequired(), NumberRange(min=1, max=1000)])


class ExamSessionForm(FlaskForm):
    room = SelectField(_l("Exam room"), coerce=int, validators=[InputRequired()])
    day = DateField(_l("Exam date"), validators=[InputRequired()])
    start = TimeField(_l("Starts at (site time)"), validators=[InputRequired()])
    minutes = IntegerField(
        _l("Length (minutes)"), default=120, validators=[InputRequired(), NumberRange(15, 600)]
    )


class ResultsForm(FlaskForm):
    file = FileField(_l("Results CSV from the national exam (UTF-8 or GBK)"), validators=[FileRequired()])


class CompletionRulesForm(FlaskForm):
    total_hours = FloatField(_l("Hours in total"), validators=[InputRequired(), NumberRange(0, 10_000)])
    online_hours = FloatField(_l("Online hours"), validators=[InputRequired(), NumberRange(0, 10_000)])
    offline_hours = FloatField(
        _l("Offline (lab) hours"), validators=[InputRequired(), NumberRange(0, 10_000)]
    )
    lab_attendance = IntegerField(
        _l("Lab units attended (percent)"), validators=[InputRequired(), NumberRange(0, 100)]
    )
    exercise_pass_mark = FloatField(
        _l("Exercise pass mark (percent)"), validators=[InputRequired(), NumberRange(0, 100)]
    )
    quizzes = BooleanField(_l("Every quiz must be passed"))
    final_project = SelectField(_l("Final project"), choices=[])
    reset = BooleanField(_l("Use the course's rules again (drop this cohort's changes)"))
