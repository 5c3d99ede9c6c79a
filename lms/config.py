"""Built-in defaults; instance/config.py, LMS_* environment variables and the mapping given to
create_app() override them in that order."""

# A real key is generated into instance/config.py by `lms init`; an app without one refuses to start.
SECRET_KEY: str | None = None

# Filled in by create_app() from the instance folder when not set.
DATABASE_URL: str | None = None
SQLALCHEMY_ENGINE_OPTIONS: dict = {}

# Plugin names to load (comma-separated string or list); None loads every installed plugin.
PLUGINS: str | list[str] | None = None

# The address people use to reach the site. Cookies are marked Secure whenever it is https.
PUBLIC_URL = "http://127.0.0.1:5000"
# Number of trusted reverse proxies in front of the app (X-Forwarded-* headers).
PROXY_COUNT = 0

BABEL_DEFAULT_LOCALE = "zh_CN"
BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
LANGUAGES = ("zh_CN", "en")

# None: Secure exactly when PUBLIC_URL is https (set True/False to force).
SESSION_COOKIE_SECURE: bool | None = None
REMEMBER_COOKIE_SECURE: bool | None = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
REMEMBER_COOKIE_HTTPONLY = True
REMEMBER_COOKIE_SAMESITE = "Lax"
PERMANENT_SESSION_LIFETIME = 60 * 60 * 12

# Failed logins: more than LIMIT failures inside WINDOW seconds blocks further attempts.
LOGIN_FAILURE_WINDOW = 15 * 60
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_ADDRESS = 30

# Uploads (CSV imports and later notebooks): larger requests get 413.
MAX_CONTENT_LENGTH = 25 * 1024 * 1024
USER_IMPORT_MAX_BYTES = 2 * 1024 * 1024
USER_IMPORT_MAX_ROWS = 5000

API_TOKEN_LIFETIME_DAYS = 90

# Online units: active reading time is measured in the browser and sent as heartbeats.
# A completed online unit credits its minutes once active time reaches this share of them.
ONLINE_CREDIT_SHARE = 0.5
# How often the browser reports active seconds (the client's interval).
HEARTBEAT_SECONDS = 15
# The most one heartbeat may add, whatever it claims (also capped by real elapsed time).
HEARTBEAT_MAX_SECONDS = 30
