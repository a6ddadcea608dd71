"""Fail loudly when the services the integration tests need (PostgreSQL, Redis) are unreachable."""

from __future__ import annotations

import os
import sys

import psycopg
import redis

DATABASE_URL = os.environ.get("REFIND_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REFIND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def main() -> int:
    problems = []
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means the suite cannot run as required
        problems.append(f"PostgreSQL at {DATABASE_URL} is unreachable: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:
        problems.append(f"Redis at {REDIS_URL} is unreachable: {exc}")
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print("The integration tests need both services; start them (see README) and run again.", file=sys.stderr)
        return 1
    print("PostgreSQL and Redis are reachable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
