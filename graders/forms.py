"""Flask-WTF form of the trainees' pages: handing in a notebook."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class UploadForm(FlaskForm):
    # The content is checked by graders.repair when it is handed in; the extension is only a hint to the
    # browser's file picker, so a notebook saved under another name is still accepted.
    file = FileField(
        _l("Your notebook (.ipynb)"),
        validators=[FileRequired(_l("Choose the notebook file (.ipynb) to hand in."))],
        render_kw={"accept": ".ipynb"},
    )
