"""Bulk import of trainees from CSV: encodings, all-or-nothing validation, the admin page and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

import lms.cli
from lms.extensions import db
from lms.models import AuditLog, Enrollment, InstitutionKind, Role, User
from lms.services import user_import
from lms.services.user_import import ImportRejected, Problem

HEADER = "username,real_name,email,phone,employer,cohort"
COHORT = "AIET-P-01"


@pytest.fixture
def app_config(app_config):
    # Messages in English, whatever catalogs get compiled later.
    return {**app_config, "BABEL_DEFAULT_LOCALE": "en"}


@pytest.fixture
def cohort(create_cohort, people):
    cohort = create_cohort(code=COHORT)
    db.session.commit()
    return cohort


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    """A file as Excel writes it: CRLF line ends."""
    return "".join(f"{line}\r\n" for line in (header, *rows)).encode(encoding)


def run_import(data: bytes, **options) -> user_import.ImportResult:
    options.setdefault("actor", None)
    options.setdefault("dry_run", False)
    options.setdefault("institution_code", None)
    options.setdefault("max_bytes", 1024 * 1024)
    options.setdefault("max_rows", 100)
    return user_import.import_users_csv(data, **options)


def rejected(data: bytes, **options) -> list[Problem]:
    with pytest.raises(ImportRejected) as info:
        run_import(data, **options)
    return info.value.problems


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)) or 0


def read_back(username: str) -> User:
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.username == username))
    assert user is not None, f"{username} was not created"
    return user


CHINESE_ROWS = (
    f"zhangsan,张三,zhangsan@example.com,13800138000,北京智算科技有限公司,{COHORT}",
    f"ouyang-lu,欧阳璐,,+86 139-0000-0000,上海镕铖信息技术有限公司,{COHORT}",
)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_file_in_each_excel_encoding_imports_chinese_names_intact(cohort, encoding):
    data = csv_bytes(*CHINESE_ROWS, encoding=encoding)
    if encoding.startswith("gb"):
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # so this really exercises the fallback
    result = run_import(data)
    db.session.commit()
    assert (result.created, result.enrolled) == (2, 2)
    assert result.usernames == ["zhangsan", "ouyang-lu"]
    zhang, ouyang = read_back("zhangsan"), read_back("ouyang-lu")
    assert (zhang.real_name, zhang.employer) == ("张三", "北京智算科技有限公司")
    assert (ouyang.real_name, ouyang.employer) == ("欧阳璐", "上海镕铖信息技术有限公司")
    assert (zhang.email, ouyang.email) == ("zhangsan@example.com", None)
    assert ouyang.phone == "+86 139-0000-0000"


def test_utf8_bom_does_not_leak_into_the_first_column_name(cohort):
    data = b"\xef\xbb\xbf" + csv_bytes(f"bom-user,带BOM的用户,,,,{COHORT}")
    assert run_import(data).usernames == ["bom-user"]
    assert read_back("bom-user").real_name == "带BOM的用户"


def test_imported_trainee_gets_the_role_at_the_cohort_base_and_is_enrolled(cohort):
    run_import(csv_bytes(f"wangwu,王五,,,,{COHORT}"))
    db.session.commit()
    user = read_back("wangwu")
    assert [(g.role, g.institution_id) for g in user.grants] == [(Role.TRAINEE, cohort.training_base_id)]
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.user_id == user.id))
    assert enrollment is not None and enrollment.cohort_id == cohort.id


def test_imported_users_have_no_password_and_cannot_sign_in(client, auth, cohort):
    run_import(csv_bytes(f"nopass,无密码,,,,{COHORT}"))
    db.session.commit()
    assert read_back("nopass").password_hash == ""
    assert auth.login("nopass", "").status_code in (400, 401)
    assert auth.login("nopass", "anything-at-all").status_code == 401


def test_import_is_audited(cohort, people):
    run_import(csv_bytes(f"audited,审计,,,,{COHORT}"), actor=people["admin"])
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "users.imported"))
    assert entry is not None
    assert entry.actor_id == people["admin"].id
    assert entry.details["usernames"] == ["audited"]


def test_one_bad_row_among_good_rows_imports_nothing(cohort):
    before = user_count()
    problems = rejected(
        csv_bytes(
            f"good-one,甲,a@example.com,,,{COHORT}",
            f"bad-mail,乙,not-an-email,,,{COHORT}",
            f"good-two,丙,c@example.com,,,{COHORT}",
        )
    )
    assert problems == [Problem(3, "'not-an-email' is not a valid e-mail address.")]
    assert user_count() == before  # nothing was even flushed
    assert db.session.scalar(select(func.count()).select_from(Enrollment)) == 0


def test_every_bad_row_is_reported_not_just_the_first(cohort):
    problems = rejected(
        csv_bytes(
            f"Bad Name,甲,,,,{COHORT}",
            f"fine-user,乙,,,,{COHORT}",
            f"no-name,,,,,{COHORT}",
            f"bad-phone,丁,,call me,,{COHORT}",
        )
    )
    assert [p.row for p in problems] == [2, 4, 5]
    assert "Username must be" in problems[0].message
    assert problems[1].message == "Real name is required."
    assert problems[2].message == "'call me' is not a valid phone number."


def test_wrong_header_names_missing_and_unexpected_columns(cohort):
    problems = rejected(csv_bytes(f"zhangsan,张三,,,{COHORT}", header="username,name,email,phone,cohort"))
    assert len(problems) == 1
    assert problems[0].row == 1
    assert "missing: real_name, employer" in problems[0].message
    assert "unexpected: name" in problems[0].message


def test_header_tolerates_spaces_any_order_and_trailing_empty_columns(cohort):
    header = " cohort , real_name,username ,email,phone,employer,,"
    data = csv_bytes(f"{COHORT},李四,lisi,,,,,", header=header)
    assert run_import(data).usernames == ["lisi"]


@pytest.mark.parametrize(
    "data", [b"", b"\r\n\r\n  \r\n", b",,,,,\r\n"], ids=["empty", "blank-lines", "only-commas"]
)
def test_empty_file_is_one_problem(cohort, data):
    assert rejected(data) == [Problem(None, "The file is empty.")]


def test_header_only_is_one_problem(cohort):
    assert rejected(csv_bytes()) == [Problem(None, "The file has a header row but no users.")]


def test_duplicate_username_in_file_points_at_the_first_occurrence(cohort):
    problems = rejected(
        csv_bytes(
            f"twin,甲,,,,{COHORT}",
            f"other,乙,,,,{COHORT}",
            f"TWIN,丙,,,,{COHORT}",
        )
    )
    assert problems == [Problem(4, "Username 'twin' also appears on line 2.")]


def test_duplicate_email_in_file_is_reported(cohort):
    problems = rejected(
        csv_bytes(
            f"first,甲,same@example.com,,,{COHORT}",
            f"second,乙,SAME@example.com,,,{COHORT}",
        )
    )
    assert problems == [Problem(3, "E-mail address 'SAME@example.com' also appears on line 2.")]


def test_username_already_in_database_is_reported(cohort, people):
    problems = rejected(csv_bytes(f"fresh,甲,,,,{COHORT}", f"trainee1,乙,,,,{COHORT}"))
    assert problems == [Problem(3, "Username 'trainee1' is already taken.")]


def test_email_already_in_database_is_reported(cohort, create_user):
    create_user(username="has-mail", email="taken@example.com")
    problems = rejected(csv_bytes(f"fresh,甲,Taken@Example.com,,,{COHORT}"))
    assert problems == [Problem(2, "E-mail address 'Taken@Example.com' is already in use.")]


def test_invalid_email_is_reported(cohort):
    assert rejected(csv_bytes(f"mailer,甲,mailer@localhost,,,{COHORT}")) == [
        Problem(2, "'mailer@localhost' is not a valid e-mail address.")
    ]


def test_unknown_cohort_is_reported(cohort):
    assert rejected(csv_bytes("lost,甲,,,,NO-SUCH-COHORT")) == [
        Problem(2, "There is no cohort with code 'NO-SUCH-COHORT'.")
    ]


def test_wrong_column_count_is_reported(cohort):
    problems = rejected(csv_bytes(f"short,甲,,,{COHORT}", f"long,乙,,,,{COHORT},extra"))
    assert problems == [
        Problem(2, "The row has 5 column(s); the header has 6."),
        Problem(3, "The row has 7 column(s); the header has 6."),
    ]


def test_line_numbers_count_lines_inside_quoted_fields(cohort):
    data = csv_bytes(f'multi,甲,,,"第一行\r\n第二行",{COHORT}', f"bad,乙,x@y,,,{COHORT}")
    assert [p.row for p in rejected(data)] == [4]


def test_row_without_cohort_needs_an_institution(cohort, dummy_training_base):
    problems = rejected(csv_bytes("homeless,甲,,,,"))
    assert [p.row for p in problems] == [2]
    assert "no institution was given" in problems[0].message
    result = run_import(csv_bytes("homeless,甲,,,,"), institution_code=dummy_training_base.code)
    assert (result.created, result.enrolled) == (1, 0)
    user = read_back("homeless")
    assert [(g.role, g.institution_id) for g in user.grants] == [(Role.TRAINEE, dummy_training_base.id)]


def test_unknown_or_wrong_kind_of_institution_is_refused(cohort, create_institution):
    create_institution(code="SITE", kind=InstitutionKind.ASSESSMENT_SITE)
    data = csv_bytes(f"someone,甲,,,,{COHORT}")
    assert rejected(data, institution_code="NOPE") == [
        Problem(None, "There is no institution with code 'NOPE'.")
    ]
    assert "not a training base" in rejected(data, institution_code="SITE")[0].message


def test_too_large_file_is_one_problem(cohort):
    data = csv_bytes(*[f"user{i:03d},用户,,,,{COHORT}" for i in range(50)])
    problems = rejected(data, max_bytes=100)
    assert len(problems) == 1 and problems[0].row is None
    assert "at most 100 B is allowed" in problems[0].message


def test_too_many_rows_is_one_problem(cohort):
    data = csv_bytes(*[f"user{i:03d},用户,,,,{COHORT}" for i in range(4)])
    assert rejected(data, max_rows=3) == [
        Problem(None, "The file has 4 rows; at most 3 can be imported at once. Split it into smaller files.")
    ]
    assert run_import(data, max_rows=4).created == 4


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"username\xff\xfe,real_name", "neither UTF-8 nor GBK"),
        ("username,real_name".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook"),
    ],
    ids=["binary", "utf-16", "xlsx"],
)
def test_undecodable_file_gets_a_clear_message(cohort, data, expected):
    problems = rejected(data)
    assert len(problems) == 1 and expected in problems[0].message


def test_dry_run_checks_and_writes_nothing(cohort):
    before = user_count()
    result = run_import(csv_bytes(f"dry,甲,,,,{COHORT}", f"run,乙,,,,{COHORT}"), dry_run=True)
    assert (result.created, result.enrolled, result.usernames) == (2, 2, ["dry", "run"])
    assert user_count() == before
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "users.imported")
        )
        == 0
    )
    assert rejected(csv_bytes(f"trainee1,甲,,,,{COHORT}"), dry_run=True)[0].row == 2


def test_institution_admin_cannot_import_into_another_base(cohort, create_user, create_institution):
    other_base = create_institution(code="OTHER")
    other_admin = create_user(Role.ADMIN, institution=other_base, username="other-admin")
    problems = rejected(csv_bytes(f"sneaky,甲,,,,{COHORT}"), actor=other_admin)
    assert problems == [Problem(2, f"You do not administer cohort '{COHORT}'.")]


# The admin page ----------------------------------------------------------------------------------------

PAGE = "/admin/users/import"


def upload(auth, data: bytes, dry_run: bool = False):
    form: dict[str, object] = {"file": (io.BytesIO(data), "trainees.csv")}
    if dry_run:
        form["dry_run"] = "y"
    return auth.post(PAGE, form, form_page=PAGE, content_type="multipart/form-data")


def test_admin_page_explains_the_format(client, auth, people):
    auth.login("admin1")
    response = client.get(PAGE)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert HEADER in page
    assert "GBK" in page and "UTF-8" in page
    assert 'enctype="multipart/form-data"' in page


def test_trainee_cannot_open_or_post_to_the_import_page(client, auth, cohort):
    auth.login("trainee1")
    assert client.get(PAGE).status_code == 403
    before = user_count()
    response = auth.post(
        PAGE,
        {"file": (io.BytesIO(csv_bytes(f"x-user,甲,,,,{COHORT}")), "t.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert user_count() == before


def test_admin_imports_a_gbk_file_through_the_page(client, auth, cohort):
    auth.login("admin1")
    response = upload(auth, csv_bytes(*CHINESE_ROWS, encoding="gbk"))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/users")
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "Imported 2 user(s) and made 2 enrolment(s)." in listing
    assert read_back("zhangsan").real_name == "张三"
    assert read_back("ouyang-lu").real_name == "欧阳璐"


def test_page_lists_every_problem_with_its_line_and_imports_nothing(client, auth, cohort):
    auth.login("admin1")
    before = user_count()
    response = upload(
        auth,
        csv_bytes(
            f"ok-user,甲,,,,{COHORT}",
            f"trainee1,乙,,,,{COHORT}",
            "lost,丙,,,,NOPE",
        ),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<td>3</td><td>Username &#39;trainee1&#39; is already taken.</td>" in page
    assert "<td>4</td><td>There is no cohort with code &#39;NOPE&#39;.</td>" in page
    assert "Nothing was imported: 2 problem(s)" in page
    assert user_count() == before


def test_page_dry_run_shows_the_plan_and_writes_nothing(client, auth, cohort):
    auth.login("admin1")
    before = user_count()
    response = upload(auth, csv_bytes(f"preview,预览,,,,{COHORT}"), dry_run=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "1 user(s) would be created and 1 enrolment(s) made" in page
    assert "<td>preview</td><td>预览</td>" in page
    db.session.expire_all()
    assert user_count() == before


def test_page_refuses_a_file_over_the_import_limit_with_413(client, auth, app, cohort):
    app.config["USER_IMPORT_MAX_BYTES"] = 1024
    auth.login("admin1")
    before = user_count()
    response = upload(auth, csv_bytes(*[f"user{i:04d},用户,,,,{COHORT}" for i in range(100)]))
    assert response.status_code == 413
    assert "The file is larger than 1 KB" in response.get_data(as_text=True)
    assert user_count() == before


def test_50_mb_upload_gets_413_not_500_and_writes_nothing(client, auth, cohort):
    auth.login("admin1")
    before = user_count()
    data = csv_bytes(f"huge,巨大,,,,{COHORT}") + b"x" * (50 * 1024 * 1024)
    # Encoded in memory: the test client would spool a body this big to a temporary file it never closes.
    boundary, body = encode_multipart(
        {"csrf_token": auth.csrf(PAGE), "file": FileStorage(io.BytesIO(data), "trainees.csv")}
    )
    response = client.post(PAGE, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert "The upload is too large." in response.get_data(as_text=True)
    db.session.expire_all()
    assert user_count() == before


# The CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def lms_cli(app, monkeypatch, tmp_path):
    """Runs `lms ...` as a separate app configured from the environment, on the test database."""
    monkeypatch.setenv("LMS_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("LMS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LMS_INSTANCE_PATH", str(tmp_path / "cli-instance"))
    monkeypatch.setenv("LMS_BABEL_DEFAULT_LOCALE", "en")
    made = []
    real_make_app = lms.cli.make_app

    def make_app(**overrides):
        made.append(real_make_app(**overrides))
        return made[-1]

    monkeypatch.setattr(lms.cli, "make_app", make_app)
    yield lambda *args: CliRunner().invoke(lms.cli.main, [str(a) for a in args])
    for cli_app in made:
        with cli_app.app_context():
            db.engine.dispose()


def test_cli_reports_file_and_line_of_each_problem_and_exits_1(lms_cli, cohort, tmp_path: Path):
    path = tmp_path / "trainees.csv"
    path.write_bytes(csv_bytes(f"good,甲,,,,{COHORT}", f"bad,乙,not-an-email,,,{COHORT}", encoding="gbk"))
    before = user_count()
    result = lms_cli("users", "import", path)
    assert result.exit_code == 1
    assert f"{path}:3: 'not-an-email' is not a valid e-mail address." in result.stderr
    assert "nothing imported: 1 problem(s)" in result.stderr
    db.session.expire_all()
    assert user_count() == before


def test_cli_reports_whole_file_problems_without_a_line(lms_cli, cohort, tmp_path: Path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = lms_cli("users", "import", path)
    assert result.exit_code == 1
    assert f"{path}: The file is empty." in result.stderr


def test_cli_imports_a_good_file_and_prints_nothing_secret(lms_cli, cohort, tmp_path: Path):
    path = tmp_path / "trainees.csv"
    path.write_bytes(csv_bytes(*CHINESE_ROWS, encoding="gbk"))
    result = lms_cli("users", "import", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{path}: created 2 user(s), made 2 enrolment(s)"
    assert read_back("zhangsan").real_name == "张三"
    assert read_back("ouyang-lu").employer == "上海镕铖信息技术有限公司"


def test_cli_dry_run_creates_nobody(lms_cli, cohort, tmp_path: Path):
    path = tmp_path / "trainees.csv"
    path.write_bytes(csv_bytes(f"dry-cli,甲,,,,{COHORT}"))
    result = lms_cli("users", "import", "--dry-run", path)
    assert result.exit_code == 0, result.output
    assert "1 user(s) would be created" in result.stdout
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.username == "dry-cli")) is None
