"""Phone research: the researcher's one-task-at-a-time screen and the directory import
(see research.py)."""

urlpatterns: list = []
