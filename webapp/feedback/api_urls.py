from django.urls import path

from webapp.feedback.api import FeedbackUndoView, FeedbackView, TripletExportView, TripletListView

urlpatterns = [
    path("feedback/", FeedbackView.as_view(), name="api-feedback"),
    path("feedback/undo/", FeedbackUndoView.as_view(), name="api-feedback-undo"),
    path("triplets/", TripletListView.as_view(), name="api-triplets"),
    path("triplets/export.jsonl", TripletExportView.as_view(), name="api-triplets-export"),
]
