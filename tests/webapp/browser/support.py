"""What the browser tests do again and again: search with a file, drop or paste one, log in as staff."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from django.contrib.auth import get_user_model

_DISPATCH = """([selector, data, name, kind]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
    const target = document.querySelector(selector);
    if (kind === "paste") {
        target.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
        return;
    }
    for (const type of ["dragenter", "dragover", "drop"]) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
}"""


def drop_file(page, selector: str, path: Path) -> None:
    """Drag-and-drop a file onto an element, as a person dragging it from their desktop."""
    page.evaluate(_DISPATCH, [selector, base64.b64encode(path.read_bytes()).decode(), path.name, "drop"])


def paste_file(page, path: Path) -> None:
    """Paste an image from the clipboard (Ctrl+V) into the page."""
    page.evaluate(_DISPATCH, ["body", base64.b64encode(path.read_bytes()).decode(), path.name, "paste"])


def search_with(page, url: str, path: Path) -> None:
    """Open the search page and search with a file; returns when the results are on screen."""
    page.goto(url + "/")
    page.set_input_files("#image-input", str(path))
    page.wait_for_selector(f"text=Results for {path.name}")


def log_in_as_staff(page, url: str, next_path: str = "/dashboard/") -> None:
    get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)
    page.goto(f"{url}/admin/login/?next={next_path}")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-12345")
    page.click("input[type=submit]")


def in_viewport(page, selector: str) -> bool:
    """Whether the element's box is (at least half) on screen."""
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        const visibleHeight = Math.min(box.bottom, innerHeight) - Math.max(box.top, 0);
        return box.width > 0 && visibleHeight >= Math.min(box.height, innerHeight) / 2;
    }""", selector)


def wait_until(page, expression: str, timeout: float = 60.0) -> None:
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function compiles its predicate
    in the page with eval, which the Content-Security-Policy forbids; page.evaluate is not subject to it.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression} stayed false for {timeout} s")
        page.wait_for_timeout(50)
