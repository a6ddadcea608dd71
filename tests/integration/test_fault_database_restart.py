"""Database restart: requests caught by it get a clean 503, nothing is half-written, the next ones succeed.

PostgreSQL is reached through a TCP proxy that the test stops (every connection cut, new ones refused)
and starts again, so the machine's PostgreSQL is never restarted. The web server is a real gunicorn
that keeps running throughout.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

from tests.integration.support import (
    Gunicorn,
    address_of,
    fresh_database,
    manage,
    prepare_site,
    sql_value,
    stack_env,
    via_port,
    visitor_session,
)
from tests.integration.tcp_proxy import TcpProxy
from webapp.gallery.demo import generate_demo_gallery

pytestmark = pytest.mark.services
OUTAGE_SECONDS = 3.0


@dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int | None
    body: str
    retry_after: str | None
    error: str = ""


class Load:
    """Threads sending a mix of reads and writes (API and pages) until stopped; every answer is kept."""

    def __init__(self, url: str, cookies, query: Path, results: dict, threads: int = 3) -> None:
        self.url, self.cookies, self.query, self.results = url, cookies, query, results
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._verdicts = itertools.count(1)  # distinct results get "not similar": each one is a new write
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, offset: int) -> None:
        session = requests.Session()
        session.cookies.update(self.cookies)  # the visitor who owns the results page
        session.headers["X-CSRFToken"] = self.cookies["csrftoken"]
        kinds = ["images", "search", "feedback", "page"]
        for step in itertools.count(offset):
            if self._stop.is_set():
                return
            self._send(session, kinds[step % len(kinds)])

    def _send(self, session: requests.Session, kind: str) -> None:
        started = time.monotonic()
        try:
            if kind == "images":
                response = session.get(f"{self.url}/api/v1/images/?page=1", timeout=30)
            elif kind == "search":
                with self.query.open("rb") as handle:
                    response = session.post(f"{self.url}/api/v1/search/", files={"image": handle}, timeout=30)
            elif kind == "feedback":
                hit = self.results["results"][1 + next(self._verdicts) % (len(self.results["results"]) - 1)]
                response = session.post(f"{self.url}/api/v1/feedback/", timeout=30, json={
                    "query_id": self.results["query_id"], "impression_id": self.results["impression_id"],
                    "image_id": hit["image_id"], "judgement": "dissimilar"})
            else:
                response = session.get(f"{self.url}/images/{self.results['results'][0]['image_id']}/", timeout=30)
            answer = Answer(kind, started, time.monotonic(), response.status_code, response.text,
                            response.headers.get("Retry-After"))
        except requests.RequestException as exc:
            answer = Answer(kind, started, time.monotonic(), None, "", None, error=repr(exc))
        with self._lock:
            self.answers.append(answer)


def test_requests_during_a_database_restart_fail_cleanly_and_the_next_ones_succeed(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=3, seed=7)
    with fresh_database() as database_url, TcpProxy(address_of(database_url)) as db_proxy:
        env = stack_env(via_port(database_url, db_proxy.port), "filesystem://", tmp_path / "data",
                        DJANGO_DEBUG="false", REFIND_ONLINE_LEARNING="false")
        prepare_site(env, folder)
        query = folder / "teal-rings" / "teal-rings-000.jpg"
        web = Gunicorn(env, tmp_path)
        try:
            visitor = visitor_session(web.url)
            with query.open("rb") as handle:
                results = visitor.post(f"{web.url}/api/v1/search/", files={"image": handle}, timeout=60).json()
            first = results["results"][0]["image_id"]
            assert visitor.post(f"{web.url}/api/v1/feedback/", timeout=30, json={
                "query_id": results["query_id"], "image_id": first, "judgement": "click"}).status_code == 201

            with Load(web.url, visitor.cookies, query, results) as load:
                time.sleep(1.0)
                down = time.monotonic()
                db_proxy.stop()
                time.sleep(OUTAGE_SECONDS)
                db_proxy.start()
                up = time.monotonic()  # once the database is reachable again: a request sent while the proxy
                # was still starting belongs to the outage (one such request failed a CI run as "after")
                time.sleep(2.0)
            answers = load.answers
        finally:
            db_proxy.start()
            log = web.stop()

        assert not [a for a in answers if a.error], "every request got an HTTP answer"
        assert max(a.ended - a.started for a in answers) < 20, "no request hung on the dead connection"
        assert {a.status for a in answers} <= {200, 201, 503}
        failed = [a for a in answers if a.status == 503]
        assert failed, "the outage was not seen"
        for answer in failed:
            assert answer.retry_after == "5"
            assert "database is unavailable" in answer.body and "Traceback" not in answer.body
            if answer.kind != "page":
                assert answer.body.startswith("{") and "detail" in answer.body
        during = [a for a in answers if a.started > down + 0.5 and a.ended < up]
        assert during and all(a.status == 503 for a in during)
        after = [a for a in answers if a.started > up]
        assert after and all(a.status in (200, 201) for a in after), [(a.kind, a.status) for a in after]
        assert log.count("Booting worker") == 1, "the web server kept running"
        assert "Traceback" not in log, log[-3000:]

        derive = "from webapp.feedback.triplets import derive_pending; derive_pending()"  # as a worker does
        manage({**env, "DATABASE_URL": database_url}, "shell", "--verbosity", "0", "-c", derive)
        orphans = sql_value(database_url, "SELECT count(*) FROM feedback_judgement j WHERE NOT EXISTS "
                                          "(SELECT 1 FROM feedback_triplet t WHERE t.judgement_id = j.id) "
                                          "AND j.kind = 'dissimilar'")
        assert orphans == 0, "a judgement was stored without its triplets"
        with psycopg.connect(database_url) as connection:
            files = connection.execute("SELECT file, thumbnail FROM gallery_image").fetchall()
        media = tmp_path / "data" / "media"
        assert all((media / file).is_file() and (media / thumb).is_file() for file, thumb in files)
