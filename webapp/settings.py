"""Django settings. Everything deployment-specific comes from environment variables (see README)."""

from __future__ import annotations

import os
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from retrieval.index import IndexFactoryError, validate_factory
from retrieval.inference import DEFAULT_PATH as DEFAULT_INFERENCE_PATH
from retrieval.inference import PATHS as INFERENCE_PATHS
from retrieval.pooling import SEPARATOR, PoolingError, parse_pooling, pooled_name
from webapp.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_rate,
    env_str,
    parse_database_url,
    parse_storages,
)

BASE_DIR = Path(__file__).resolve().parent.parent

REFIND_ENV = env_choice("REFIND_ENV", "development", {"development", "production"})
PRODUCTION = REFIND_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when REFIND_ENV=production (it shows tracebacks).")
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when REFIND_ENV=production.")
    SECRET_KEY = "refind-development-only-insecure-key-do-not-use-in-production-0123456789"
elif PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 random characters in production.")
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Reverse proxies whose X-Forwarded-For is believed (rate limits, login lockout); every other request is keyed
# on its socket address (docs/security.md).
TRUSTED_PROXIES = env_networks("REFIND_TRUSTED_PROXIES")

# Cache (rate-limit counters): per process by default; share it between processes through Redis.
# While Redis is down the shared cache reads as empty (rate limits fail open) instead of failing requests.
_cache_url = env_str("REFIND_CACHE_URL")
CACHES = {"default": (
    {"BACKEND": "webapp.cache.TolerantRedisCache", "LOCATION": _cache_url,
     "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}}
    if _cache_url else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
)}
# Sessions: from the shared cache when there is one, written through to the database (webapp/sessions.py)
SESSION_ENGINE = "webapp.sessions" if _cache_url else "django.contrib.sessions.backends.db"

# Files (docs/scaling.md). DATA_DIR is this host's: feature cache, artifact cache, embedded broker.
# Everything a worker writes for others — media, model and index artifacts — goes through STORAGES:
# a folder (REFIND_STORAGE_DIR, default DATA_DIR) unless REFIND_STORAGE_BACKEND names another Storage.
DATA_DIR = Path(env_str("REFIND_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
STORAGE_DIR = Path(env_str("REFIND_STORAGE_DIR", str(DATA_DIR))).resolve()
MEDIA_ROOT = STORAGE_DIR / "media"
MEDIA_URL = "/media/"
FEATURES_DIR = DATA_DIR / "features"
CACHE_DIR = Path(env_str("REFIND_CACHE_DIR", str(DATA_DIR / "cache"))).resolve()
STORAGES = {
    **parse_storages(env_str("REFIND_STORAGE_BACKEND"), env_str("REFIND_STORAGE_OPTIONS")),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if PRODUCTION
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served from here (no CDN)
    "csp",
    "django_celery_beat",
    "axes",
    "webapp.gallery",
    "webapp.search",
    "webapp.feedback",
    "webapp.learning",
]

MIDDLEWARE = [
    "webapp.health.HealthMiddleware",  # /healthz: before the HTTPS redirect and the host check
    "django.middleware.security.SecurityMiddleware",
    "webapp.errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "webapp.errors.RequestSizeLimitMiddleware",  # after authentication (staff may upload more), before any body is read
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'refind.sqlite3'}"), BASE_DIR
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
# Login lockout (django-axes): REFIND_LOGIN_FAILURE_LIMIT failed logins from one client address lock it out of
# logging in for REFIND_LOGIN_COOLOFF_MINUTES (docs/security.md). Token-authenticated API calls are unaffected.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("REFIND_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("REFIND_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "webapp.throttling.client_ip"  # X-Forwarded-For only from REFIND_TRUSTED_PROXIES
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = not PRODUCTION

# Uploads: the limit is checked on the bytes we decode; Django's own limits stay a little above it.
MAX_UPLOAD_BYTES = env_int("REFIND_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
MIN_IMAGE_SIDE = env_int("REFIND_MIN_IMAGE_SIDE", 32, minimum=1)
MAX_IMAGE_PIXELS = env_int("REFIND_MAX_IMAGE_PIXELS", 50_000_000, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
# Staff gallery uploads (many files or an archive in one request; webapp/gallery/upload_limit.py)
MAX_IMPORT_REQUEST_BYTES = env_int("REFIND_MAX_IMPORT_REQUEST_BYTES", 1024**3, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

# Retrieval
_NETWORK = env_str("REFIND_BACKBONE", "efficientnet_lite0")
if SEPARATOR in _NETWORK:
    raise ImproperlyConfigured(f"REFIND_BACKBONE={_NETWORK!r} names the network only; set REFIND_POOLING instead.")
# Pooling of the last feature map (docs/benchmarks.md §10): GeM p=3 by default.
POOLING = env_choice("REFIND_POOLING", "gem", {"avg", "gem"})
try:
    _POOLING = parse_pooling(POOLING, env_str("REFIND_GEM_P"))
except PoolingError as exc:
    raise ImproperlyConfigured(f"REFIND_GEM_P: {exc}") from exc
# The features the app extracts: network + pooling (e.g. "efficientnet_lite0+gem3"); a change re-extracts.
BACKBONE = pooled_name(_NETWORK, _POOLING)
LOADED_BACKBONES = env_int("REFIND_LOADED_BACKBONES", 2, minimum=1, maximum=64)  # per process: webapp/runtime.py
INDEX_FACTORY = env_str("REFIND_INDEX_FACTORY", "Flat")
try:
    validate_factory(INDEX_FACTORY)
except IndexFactoryError as exc:
    raise ImproperlyConfigured(f"REFIND_INDEX_FACTORY: {exc}") from exc
HNSW_EF_SEARCH = env_int("REFIND_HNSW_EF_SEARCH", 128, minimum=1, maximum=100_000)
IVF_NPROBE = env_int("REFIND_IVF_NPROBE", 16, minimum=1, maximum=1_000_000)
SEARCH_THREADS = env_int("REFIND_SEARCH_THREADS", 1, minimum=1, maximum=256)
# Web processes decode and embed uploads on threads this much nicer than requests (retrieval/priority.py):
# clicks sharing the cores are served first. 0: in the request thread.
EMBED_NICE = env_int("REFIND_EMBED_NICE", 10, minimum=0, maximum=19)
EXTRACT_BATCH_SIZE = env_int("REFIND_EXTRACT_BATCH_SIZE", 16, minimum=1, maximum=512)
EXTRACT_PARALLEL = env_int("REFIND_EXTRACT_PARALLEL", os.cpu_count() or 1, minimum=1, maximum=256)
# How the backbone runs (retrieval/inference.py, docs/benchmarks.md §11): ONNX Runtime int8 or fp32, or torch.
INFERENCE = env_choice("REFIND_INFERENCE", DEFAULT_INFERENCE_PATH, set(INFERENCE_PATHS))
# This host's exported (ONNX) models, named by their content: safe to share between data dirs of one host.
EXPORTS_DIR = Path(env_str("REFIND_EXPORTS_DIR", str(DATA_DIR / "exported"))).resolve()
SEARCH_DEFAULT_K = 20
# Zero-click re-weighting and click memory (docs/benchmarks.md §10)
QUERY_EXPANSION = env_int("REFIND_QUERY_EXPANSION", 0, minimum=0, maximum=50)  # αQE: top k (0 = off)
DBA_K = env_int("REFIND_DBA", 1, minimum=0, maximum=50)  # αDBA at index build: nearest k (0 = off)
CLICK_MEMORY = env_bool("REFIND_CLICK_MEMORY", True)
# judgements reach the click memory in a background thread of the web process (a click then costs a fraction
# of a search); off: in the click's own request, after its commit
CLICK_MEMORY_BACKGROUND = env_bool("REFIND_CLICK_MEMORY_BACKGROUND", True)
CLICK_MEMORY_MAX_SHIFT = env_float("REFIND_CLICK_MEMORY_MAX_SHIFT", 0.1, minimum=0.0, maximum=2.0)
SEARCH_MAX_K = 100
# Feedback → triplets (docs/feedback.md)
FEEDBACK_NEGATIVES = env_choice("REFIND_FEEDBACK_NEGATIVES", "skip_above", {"skip_above", "explicit_only"})
FEEDBACK_MAX_SKIP_ABOVE = env_int("REFIND_FEEDBACK_MAX_SKIP_ABOVE", 20, minimum=0, maximum=100)
FEEDBACK_MAX_TRANSITIVE = env_int("REFIND_FEEDBACK_MAX_TRANSITIVE", 20, minimum=0, maximum=1000)
# Learning (docs/learning.md)
ONLINE_LEARNING = env_bool("REFIND_ONLINE_LEARNING", True)
ONLINE_DEBOUNCE_SECONDS = env_float("REFIND_ONLINE_DEBOUNCE_SECONDS", 1.0, minimum=0.0)
ONLINE_MIN_NEW_TRIPLETS = env_int("REFIND_ONLINE_MIN_NEW_TRIPLETS", 10, minimum=1)
OAHU_BATCH_SIZE = env_int("REFIND_OAHU_BATCH_SIZE", 16, minimum=1, maximum=4096)  # 16: docs/training.md
OAHU_LR = env_float("REFIND_OAHU_LR", 1.0, minimum=1e-6)  # 1, not the library's 3: docs/learning.md
OAHU_PARAMS: dict = {"lr": OAHU_LR}  # the rest: training.oahu.OAHUConfig defaults (docs/training.md)
# Triplet sources the online learner consumes; transitive ones collapse it (docs/learning.md)
ONLINE_TRIPLET_SOURCES = env_list("REFIND_ONLINE_TRIPLET_SOURCES", ["click", "explicit"],
                                  choices={"click", "explicit", "transitive", "label"})
BATCH_DEFAULT_LOSS = env_str("REFIND_BATCH_LOSS", "multi_similarity")
TRAINING_DEVICE = env_choice("TRAINING_DEVICE", "auto", {"auto", "cpu", "cuda"})
# Promotion guard (docs/learning.md): a paired test of candidate vs active on the same queries
PROMOTION_GUARD = env_choice("REFIND_PROMOTION_GUARD", "paired", {"paired", "off"})  # off: promote every candidate
GUARD_MAX_QUERIES = env_int("REFIND_GUARD_MAX_QUERIES", 10_000, minimum=10)
GUARD_MIN_DISCORDANT = env_int("REFIND_GUARD_MIN_DISCORDANT", 10, minimum=1)
GUARD_CONFIDENCE = min(0.999, env_float("REFIND_GUARD_CONFIDENCE", 0.95, minimum=0.5))
PROMOTION_TOLERANCE_POINTS = env_float("REFIND_PROMOTION_TOLERANCE_POINTS", 0.5, minimum=0.0)
ANONYMOUS_RETENTION_DAYS = env_int("REFIND_ANONYMOUS_RETENTION_DAYS", 30, minimum=1)
LEARNING_HELDOUT_IMPRESSION_EVERY = env_int("REFIND_HELDOUT_IMPRESSION_EVERY", 5, minimum=0)
LEARNING_STALE_SECONDS = env_int("REFIND_STALE_RUN_SECONDS", 120, minimum=5)
LEARNING_QUEUE_WAIT_SECONDS = env_int("REFIND_QUEUE_WAIT_SECONDS", 600, minimum=10)  # a queued run nobody takes
INDEX_CHECK_SECONDS = env_float("REFIND_INDEX_CHECK_SECONDS", 1.0, minimum=0.0)
# Results scoring below this similarity are set apart as "weaker matches" (measured: docs/benchmarks.md §12)
RELEVANCE_CUTOFF = env_float("REFIND_RELEVANCE_CUTOFF", 0.5, minimum=-1.0)

# Celery: an embedded filesystem broker by default (no server); Redis or RabbitMQ by URL.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2.0}
# A broker outage must not hold up a web request: publishing gives up within about a second (the caller
# keeps what it stored and the beat task re-sends later; docs/operations.md).
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                    "interval_max": 0.5}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = ("webapp.dispatch.route",)  # queue names: webapp/dispatch.py
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Gallery lifecycle (docs/gallery.md)
IMPORT_CHUNK_SIZE = env_int("REFIND_IMPORT_CHUNK_SIZE", 256, minimum=1, maximum=100_000)
IMPORT_STALE_SECONDS = env_int("REFIND_IMPORT_STALE_SECONDS", 300, minimum=5)
WATCHED_FOLDERS = env_list("REFIND_WATCHED_FOLDERS", [])
WATCH_WITHDRAW_MISSING = env_bool("REFIND_WATCH_WITHDRAW_MISSING", False)
KEEP_ROLLBACK_VERSIONS = env_int("REFIND_KEEP_ROLLBACK_VERSIONS", 10, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "learning-housekeeping": {
        "task": "webapp.learning.tasks.housekeeping",
        "schedule": env_float("REFIND_HOUSEKEEPING_SECONDS", 30.0, minimum=5.0),
    },
    "prune-visitors": {  # expired sessions, unjudged anonymous impressions (webapp/feedback/tasks.py)
        "task": "webapp.feedback.tasks.prune_visitors",
        "schedule": 3600.0,
    },
    "refresh-index": {
        "task": "webapp.gallery.tasks.refresh_index",
        "schedule": env_float("REFIND_REFRESH_INDEX_SECONDS", 300.0, minimum=10.0),
    },
    "import-housekeeping": {  # re-sends chunks whose worker died, scans watched folders
        "task": "webapp.gallery.tasks.import_housekeeping",
        "schedule": env_float("REFIND_WATCH_SECONDS", 60.0, minimum=5.0),
    },
    "prune-artifacts": {
        "task": "webapp.gallery.tasks.prune_artifacts",
        "schedule": env_float("REFIND_PRUNE_SECONDS", 3600.0, minimum=60.0),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Token first: a missing or bad token is a 401 with `WWW-Authenticate: Token` (session auth would say 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "webapp.pagination.Pagination",
    "DEFAULT_THROTTLE_RATES": {
        "search": env_rate("REFIND_THROTTLE_SEARCH", "120/min"),
        "feedback": env_rate("REFIND_THROTTLE_FEEDBACK", "600/min"),
    },
    "PAGE_SIZE": env_int("REFIND_API_PAGE_SIZE", 50, minimum=1, maximum=1000),
    "EXCEPTION_HANDLER": "webapp.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Refind API",
    "DESCRIPTION": "Search a gallery by image; the results people click teach the model.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # Swagger UI from drf-spectacular-sidecar's static files, not a CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.api_schema.add_error_responses",
    ],
}

# Content-Security-Policy (django-csp): scripts, styles, fonts and connections from this origin only, no
# inline script or style, no eval; images also as data: (Swagger UI's icons) and blob: (the upload preview).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF], "script-src": [SELF], "style-src": [SELF], "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF], "connect-src": [SELF], "object-src": [NONE], "base-uri": [SELF],
        "form-action": [SELF], "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("REFIND_LOG_LEVEL", "INFO")},
    "loggers": {"PML": {"level": "WARNING"},  # pytorch-metric-learning's per-call chatter
                "axes": {"level": "WARNING"}},  # lockouts are warnings; every successful login is not news
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
