from django.http import HttpResponse
from django.urls import path

app_name = "admin_jobs"
urlpatterns = [path("", lambda request: HttpResponse("jobs"), name="job_list")]
