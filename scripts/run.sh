#!/usr/bin/env bash
# The README's run command: set up, migrate, seed the demo gallery, start worker + beat + web.
# Serves through gunicorn with DEBUG off, bound to 127.0.0.1 (REFIND_HOST to change it; README: "Reaching it
# from another machine"). `--dev` (or REFIND_DEV=1) serves with Django's development server and DEBUG on.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=${REFIND_DEV:-0}
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) echo "usage: bash scripts/run.sh [--dev]"; exit 0 ;;
    *) echo "unknown option: $arg (usage: bash scripts/run.sh [--dev])" >&2; exit 2 ;;
  esac
done
source scripts/setup-env.sh
export REFIND_ENV=${REFIND_ENV:-development}
# One OpenMP thread per process: web and workers share the cores, and OpenMP barriers across
# busy cores made searches and online updates several times slower (docs/benchmarks.md).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
HOST=${REFIND_HOST:-127.0.0.1}
PORT=${REFIND_PORT:-8000}
DATA=${REFIND_DATA_DIR:-var}
mkdir -p "$DATA/log"
umask 077  # what this script writes into the data dir (secret key, admin login, logs) is the owner's only

if [ "$DEV" = 1 ]; then
  export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
else
  export DJANGO_DEBUG=0
  # A secret key generated once and kept in the data dir (sessions and CSRF tokens survive restarts).
  if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
    if [ ! -s "$DATA/secret-key" ]; then
      python -c "import secrets; print(secrets.token_urlsafe(64))" > "$DATA/secret-key"
    fi
    chmod 600 "$DATA/secret-key"
    DJANGO_SECRET_KEY=$(cat "$DATA/secret-key")
    export DJANGO_SECRET_KEY
  fi
fi

python manage.py migrate --noinput -v0
python manage.py seed_demo --per-class "${REFIND_DEMO_PER_CLASS:-25}"
python manage.py ensure_admin > "$DATA/admin-login.txt"
chmod 600 "$DATA/admin-login.txt"
# Two workers so that a training run never waits behind index builds and reports (docs/learning.md).
celery -A webapp worker -Q default -n default@%h --concurrency 1 --without-mingle --without-gossip --loglevel INFO > "$DATA/log/worker.log" 2>&1 &
worker=$!
celery -A webapp worker -Q training -n training@%h --concurrency 1 --without-mingle --without-gossip --loglevel INFO > "$DATA/log/trainer.log" 2>&1 &
trainer=$!
celery -A webapp beat --loglevel INFO > "$DATA/log/beat.log" 2>&1 &
beat=$!
trap 'kill $worker $trainer $beat 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

echo
echo "Refind is running at http://$HOST:$PORT/  (API docs: http://$HOST:$PORT/api/docs/)"
cat "$DATA/admin-login.txt"
echo "Worker and beat logs: $DATA/log/. Press Ctrl-C to stop."
echo
if [ "$DEV" = 1 ]; then
  echo "Development mode: DEBUG on, Django's development server (never expose it)."
  python manage.py runserver "$HOST:$PORT" --noreload
else
  gunicorn webapp.wsgi:application --bind "$HOST:$PORT" --workers "${REFIND_WEB_WORKERS:-2}" --threads 4 \
    --timeout 120 --access-logfile "$DATA/log/access.log" --error-logfile - --log-level warning
fi
