"""16 concurrent feedback writers against a real threaded server: no errors, every judgement stored exactly
once and its triplets derived exactly once (by the worker's `derive_pending`, run here after the writers),
on SQLite (the embedded default) and on PostgreSQL (issue 11, item 4)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.imagefactory import image_bytes
from tests.integration.support import fresh_database, manage, sql_value
from tests.security.server import Server, prepared_site

WRITERS = 16


def _writer(base_url: str, colour: int) -> tuple[list[int], int]:
    """One browser-like anonymous visitor: search, then click every result and mark the first similar.
    Returns (error statuses, judgements created)."""
    session = requests.Session()
    session.get(f"{base_url}/", timeout=60)
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base_url}/"}
    image = image_bytes("PNG", (96, 96), colour=(colour, 255 - colour, (7 * colour) % 256))
    found = session.post(f"{base_url}/api/v1/search/", files={"image": ("q.png", image)}, data={"k": 12},
                         headers=headers, timeout=120)
    if found.status_code != 200:
        return [found.status_code], 0
    body = found.json()
    errors, judgements = [], 0
    verdicts = [(hit["image_id"], "click") for hit in body["results"][1:]] + [(body["results"][0]["image_id"],
                                                                               "similar")]
    for image_id, kind in verdicts:
        answer = session.post(f"{base_url}/api/v1/feedback/", json={
            "query_id": body["query_id"], "image_id": image_id, "judgement": kind,
            "impression_id": body["impression_id"]}, headers=headers, timeout=120)
        if answer.status_code != 201:
            errors.append(answer.status_code)
            continue
        judgements += 1
    return errors, judgements


def _hammer(base_url: str) -> tuple[list[int], int]:
    with ThreadPoolExecutor(WRITERS) as pool:
        outcomes = list(pool.map(lambda i: _writer(base_url, 11 * i + 3), range(WRITERS)))
    return [code for codes, _ in outcomes for code in codes], sum(o[1] for o in outcomes)


DERIVE = "from webapp.feedback.triplets import derive_pending; print(derive_pending())"


def _derive_twice(env: dict[str, str]) -> int:
    """What the worker does after the clicks; a second run finds nothing left (each judgement derived once)."""
    made = int(manage(env, "shell", "--verbosity", "0", "-c", DERIVE).strip())
    assert made > 0 and int(manage(env, "shell", "--verbosity", "0", "-c", DERIVE).strip()) == 0
    return made


COUNTS = "SELECT (SELECT COUNT(*) FROM feedback_judgement), (SELECT COUNT(*) FROM feedback_triplet)"
ENV = {"REFIND_THROTTLE_FEEDBACK": "100000/min", "REFIND_THROTTLE_SEARCH": "100000/min"}


def _hammer_stored(tmp_path: Path, database_url: str) -> tuple[int, int]:
    """16 concurrent writers against gunicorn on this database: no errors; (judgements, triplets derived)."""
    env = prepared_site(tmp_path, database_url, **ENV)
    server = Server(env, tmp_path, workers=2, threads=8)
    try:
        errors, judgements = _hammer(server.url)
    finally:
        log = server.stop()
    assert errors == [], (errors, log[-3000:])
    assert judgements == WRITERS * 12
    return judgements, _derive_twice(env)


@pytest.mark.services
def test_sqlite_writers_wait_their_turn(tmp_path: Path) -> None:
    database = tmp_path / "refind.sqlite3"
    judgements, triplets = _hammer_stored(tmp_path, f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        assert connection.execute(COUNTS).fetchone() == (judgements, triplets)


@pytest.mark.services
def test_postgresql_writers_wait_their_turn(tmp_path: Path) -> None:
    with fresh_database() as url:
        judgements, triplets = _hammer_stored(tmp_path, url)
        assert sql_value(url, "SELECT COUNT(*) FROM feedback_judgement") == judgements
        assert sql_value(url, "SELECT COUNT(*) FROM feedback_triplet") == triplets
