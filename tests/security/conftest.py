"""The security suite reuses the webapp fixtures (a data dir per test, the demo gallery) and the browser ones."""

from tests.webapp.browser.conftest import browser, page, shot, width  # noqa: F401
from tests.webapp.conftest import data_dir, demo_folder, gallery, in_memory_broker  # noqa: F401
