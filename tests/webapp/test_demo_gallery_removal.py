"""Issue 14: the demo gallery can be removed from the dashboard once the user has imported their own images."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.webapp.feedback_factory import make_images
from webapp.gallery.demo import demo_image_ids
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
BUTTON = "Remove the demo gallery"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True))
    return client


def test_the_demo_can_go_only_once_own_images_are_in(staff: Client, gallery) -> None:
    demo = demo_image_ids()
    assert len(demo) == 36
    assert BUTTON not in staff.get("/dashboard/").content.decode()  # only the demo: nothing to replace it
    assert staff.post("/dashboard/demo/remove/").status_code == 400

    own = make_images(2, label="my-birds")
    assert BUTTON in staff.get("/dashboard/").content.decode()
    answer = staff.post("/dashboard/demo/remove/")
    assert answer.status_code == 200 and "Removed the 36 demo images" in answer.content.decode()
    assert not Image.objects.filter(pk__in=demo, role=Image.Role.GALLERY).exists()
    assert set(Image.objects.filter(role=Image.Role.GALLERY).values_list("id", flat=True)) == {i.pk for i in own}
    assert BUTTON not in staff.get("/dashboard/").content.decode()


def test_removing_the_demo_needs_staff(gallery) -> None:
    make_images(1, label="mine")
    assert Client().post("/dashboard/demo/remove/").status_code in (302, 403)
    assert len(demo_image_ids()) == 36
