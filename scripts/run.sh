#!/usr/bin/env bash
# The README's run command: set up, migrate, seed the demo gallery, start worker + beat + web.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-env.sh
export REFIND_ENV=${REFIND_ENV:-development}
# One OpenMP thread per process: web and workers share the cores, and OpenMP barriers across
# busy cores made searches and online updates several times slower (docs/benchmarks.md).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
HOST=${REFIND_HOST:-127.0.0.1}
PORT=${REFIND_PORT:-8000}
DATA=${REFIND_DATA_DIR:-var}
mkdir -p "$DATA/log"

python manage.py migrate --noinput -v0
python manage.py seed_demo
python manage.py ensure_admin > "$DATA/admin-login.txt"
# Two workers so that a training run never waits behind index builds and reports (docs/learning.md).
celery -A webapp worker -Q default -n default@%h --concurrency 1 --loglevel INFO > "$DATA/log/worker.log" 2>&1 &
worker=$!
celery -A webapp worker -Q training -n training@%h --concurrency 1 --loglevel INFO > "$DATA/log/trainer.log" 2>&1 &
trainer=$!
celery -A webapp beat --loglevel INFO > "$DATA/log/beat.log" 2>&1 &
beat=$!
trap 'kill $worker $trainer $beat 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

echo
echo "Refind is running at http://$HOST:$PORT/  (API docs: http://$HOST:$PORT/api/docs/)"
cat "$DATA/admin-login.txt"
echo "Worker and beat logs: $DATA/log/. Press Ctrl-C to stop."
echo
python manage.py runserver "$HOST:$PORT" --noreload
