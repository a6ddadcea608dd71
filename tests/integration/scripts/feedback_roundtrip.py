# Run inside `manage.py shell`: search, give feedback like a person, wait for the worker to learn, search again.
import json
import time

from django.test import Client

from webapp.gallery.models import Image, IndexVersion

query = Image.objects.filter(split="feedback").order_by("id").first()
client = Client()


def search() -> dict:
    with query.file.open("rb") as handle:
        return client.post("/api/v1/search/", {"image": handle, "k": 20}).json()


before = search()
start_index = IndexVersion.objects.get(is_active=True).pk
wrong = [hit for hit in before["results"] if hit["label"] != query.label][:3]
right = [hit for hit in before["results"] if hit["label"] == query.label]
for hit in wrong:
    client.post("/api/v1/feedback/", {"query_id": before["query_id"], "image_id": hit["image_id"],
                                      "judgement": "dissimilar"}, content_type="application/json")
for hit in right:
    client.post("/api/v1/feedback/", {"query_id": before["query_id"], "image_id": hit["image_id"],
                                      "judgement": "click"}, content_type="application/json")
clicked = time.monotonic()
while time.monotonic() - clicked < 90:
    if IndexVersion.objects.filter(is_active=True).exclude(pk=start_index).exists():
        break
    time.sleep(0.2)
visible_after = time.monotonic() - clicked
after = search()
print(json.dumps({"before": before, "after": after, "seconds": visible_after}))
