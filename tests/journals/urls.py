"""The project's URLs plus Admin → Journals, as bms/urls.py will include them."""

from django.urls import include, path

from bms.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("admin/journals/", include("journals.urls"))]
