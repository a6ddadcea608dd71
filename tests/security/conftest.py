"""The adversarial suite runs with the webapp tests' fixtures (own data directory, demo gallery, eager tasks)."""

from tests.webapp.conftest import (  # noqa: F401
    data_dir,
    demo_folder,
    eager_tasks,
    gallery,
    in_memory_broker,
    split_demo,
)
