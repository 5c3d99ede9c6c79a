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

# Background jobs (grading) go through Celery. None: an embedded broker in the instance folder that needs
# no server, with a worker started by `lms run`. At scale: amqp://… (RabbitMQ) or redis://…, and run
# `lms worker` on as many machines as needed (they share only the database and the broker).
BROKER_URL: str | None = None
# Start a worker process with `lms run` (None: only when the broker is the embedded one).
EMBEDDED_WORKER: bool | None = None
# Worker processes per `lms worker` (None: one per CPU core).
WORKER_CONCURRENCY: int | None = None
# A running job is a worker's for this long, renewed by its heartbeat; after that it is run again.
JOB_LEASE_SECONDS = 60
# A job still queued after this long is sent to the broker again (its message may have been lost).
JOB_REQUEUE_SECONDS = 600
# How often each worker looks for such jobs.
JOB_SWEEP_SECONDS = 15
# The broker queue the LMS's jobs go through (several LMS installations may share one broker).
QUEUE_NAME = "lms"
# A job that has been started this many times without finishing is failed with a message.
JOB_MAX_ATTEMPTS = 3
