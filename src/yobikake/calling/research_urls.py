"""Phone research: the researcher's one-task-at-a-time screen and the directory import
(see research.py)."""

from django.urls import path

from yobikake.calling import research_views

urlpatterns = [
    path("research/", research_views.research_screen, name="research"),
    path("research/next/", research_views.research_next, name="research_next"),
    path(
        "research/<int:call_target_id>/record/",
        research_views.research_record,
        name="research_record",
    ),
    path("research/directory/", research_views.research_directory, name="research_directory"),
]
