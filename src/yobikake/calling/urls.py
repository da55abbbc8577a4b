from django.urls import include, path

from yobikake.calling import views

app_name = "calling"
urlpatterns = [
    path("calls/", views.operator_screen, name="operator"),
    path("calls/next/", views.next_call, name="next_call"),
    path("calls/<int:call_target_id>/outcome/", views.outcome, name="outcome"),
    path("campaigns/", views.campaign_index, name="campaign_index"),
    path("campaigns/board/", views.board, name="board"),
    path("campaigns/board/live/", views.board_live, name="board_live"),
    path("campaigns/new/", views.campaign_new, name="campaign_new"),
    path("campaigns/<int:campaign_id>/", views.progress, name="progress"),
    path("campaigns/<int:campaign_id>/operators/", views.campaign_operators, name="operators"),
    path("campaigns/<int:campaign_id>/start/", views.campaign_start, name="start"),
    path("campaigns/<int:campaign_id>/close/", views.campaign_close, name="close"),
    path(
        "campaigns/<int:campaign_id>/terms/request/",
        views.campaign_terms_request,
        name="terms_request",
    ),
    path(
        "campaigns/<int:campaign_id>/terms/approve/",
        views.campaign_terms_approve,
        name="terms_approve",
    ),
    path(
        "campaigns/<int:campaign_id>/terms/refuse/",
        views.campaign_terms_refuse,
        name="terms_refuse",
    ),
    path("", include("yobikake.calling.research_urls")),
]
