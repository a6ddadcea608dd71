"""The adversarial suite runs with the webapp tests' fixtures (own data directory, demo gallery, eager tasks)
and the browser ones."""

from tests.webapp.browser.conftest import browser, page, shot, width  # noqa: F401
from tests.webapp.conftest import (  # noqa: F401
    data_dir,
    demo_folder,
    eager_tasks,
    gallery,
    in_memory_broker,
    split_demo,
)
