from django.urls import path

from yobikake.incidents import inquiry_views

app_name = "inquiry"
urlpatterns = [
    path("", inquiry_views.desk, name="desk"),
]
