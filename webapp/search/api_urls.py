from django.urls import path

from webapp.search.api import RefineView, SearchView

urlpatterns = [
    path("search/", SearchView.as_view(), name="api-search"),
    path("search/refine/", RefineView.as_view(), name="api-search-refine"),
]
