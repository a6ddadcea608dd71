"""A simulated person who searches and clicks through the public HTTP API only (never the database)."""

from __future__ import annotations

import http.cookiejar
import json
import random
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field


class SimulationError(RuntimeError):
    """The server answered something a person could not act on."""


@dataclass
class SimulationSummary:
    queries: int = 0
    clicks: int = 0
    wrong_clicks: int = 0
    clicked: list[tuple[int, int]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.queries} queries, {self.clicks} clicks ({self.wrong_clicks} on a wrong label)"


class SimulatedUser:
    def __init__(self, base_url: str, seed: int = 0, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        url = path if path.startswith("http") else self.base_url + path
        request = urllib.request.Request(url, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise SimulationError(f"{method} {url} -> {exc.code}: {exc.read()[:300]!r}") from exc

    def _json(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> dict:
        return json.loads(self._request(method, path, body, content_type))

    def feedback_images(self) -> list[dict]:
        """Every labelled image of the feedback half, paging through GET /api/v1/images/."""
        images, url = [], "/api/v1/images/?split=feedback&page_size=500"
        while url:
            page = self._json("GET", url)
            images += page["results"]
            url = page["next"]
        return images

    def search(self, image_bytes: bytes, k: int) -> dict:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"query.jpg\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + image_bytes + f"\r\n--{boundary}--\r\n".encode()
        return self._json("POST", "/api/v1/search/", body, f"multipart/form-data; boundary={boundary}")

    def click(self, query_id: int, impression_id: int, image_id: int) -> dict:
        body = json.dumps({"query_id": query_id, "impression_id": impression_id, "image_id": image_id,
                           "judgement": "click"}).encode()
        return self._json("POST", "/api/v1/feedback/", body, "application/json")

    def mark(self, query_id: int, impression_id: int, image_id: int, judgement: str = "similar") -> dict:
        body = json.dumps({"query_id": query_id, "impression_id": impression_id, "image_id": image_id,
                           "judgement": judgement}).encode()
        return self._json("POST", "/api/v1/feedback/", body, "application/json")

    def refine(self, query_id: int, k: int) -> dict:
        """The next page ranked with this person's marks (POST /api/v1/search/refine/)."""
        body = json.dumps({"query_id": query_id, "k": k}).encode()
        return self._json("POST", "/api/v1/search/refine/", body, "application/json")

    def next_page_hit(self, image_bytes: bytes, label: str, marks: int, k: int = 20) -> tuple[bool, bool]:
        """Search, mark the first `marks` same-label results of page 1 similar, refine: are page 1's and the
        next page's first results of the same label? (In-session relevance feedback, docs/benchmarks.md §10.)"""
        found = self.search(image_bytes, k)
        for result in [r for r in found["results"] if r["label"] == label][:marks]:
            self.mark(found["query_id"], found["impression_id"], result["image_id"])
        page = self.refine(found["query_id"], k)
        first = bool(found["results"]) and found["results"][0]["label"] == label
        return first, bool(page["results"]) and page["results"][0]["label"] == label

    def choose_clicks(self, label: str, results: list[dict], clicks: int, noise: float) -> list[tuple[dict, bool]]:
        """Top-down like a person: the next matching result, or with probability `noise` a wrong one."""
        matching = [r for r in results if r["label"] == label]
        wrong = [r for r in results if r["label"] != label]
        chosen: list[tuple[dict, bool]] = []
        for _ in range(clicks):
            if wrong and self.rng.random() < noise:
                chosen.append((wrong.pop(self.rng.randrange(len(wrong))), True))
            elif matching:
                chosen.append((matching.pop(0), False))
        return chosen

    def run(self, queries: int, clicks_per_query: int, noise: float, k: int = 20) -> SimulationSummary:
        pool = self.feedback_images()
        if not pool:
            raise SimulationError("The gallery has no feedback half: run `manage.py split_gallery` first.")
        order = [pool[i % len(pool)] for i in self.rng.sample(range(len(pool)), len(pool))]
        summary = SimulationSummary()
        for n in range(queries):
            image = order[n % len(order)]
            found = self.search(self._request("GET", image["image_url"]), k)
            summary.queries += 1
            for result, is_wrong in self.choose_clicks(image["label"], found["results"], clicks_per_query, noise):
                self.click(found["query_id"], found["impression_id"], result["image_id"])
                summary.clicks += 1
                summary.wrong_clicks += is_wrong
                summary.clicked.append((found["query_id"], result["image_id"]))
        return summary
