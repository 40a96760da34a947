from django.urls import path

from admin_jobs import views

app_name = "admin_jobs"
urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("retry-failed/", views.job_retry_all_failed, name="job_retry_all_failed"),
    path("<int:pk>/", views.job_detail, name="job_detail"),
    path("<int:pk>/retry/", views.job_retry, name="job_retry"),
    path("<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("<int:pk>/resolve/", views.job_resolve, name="job_resolve"),
]
