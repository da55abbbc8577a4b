from django.urls import path

from yobikake.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/mfa/", views.mfa_view, name="mfa"),
    path("logout/", views.logout_view, name="logout"),
    path("accounts/", views.user_list, name="user_list"),
    path("accounts/new/", views.create_account, name="create_account"),
    path("accounts/role-requests/", views.role_requests, name="role_requests"),
    path(
        "accounts/role-requests/<int:assignment_id>/decide/",
        views.decide_role_request,
        name="decide_role_request",
    ),
    path("accounts/api-tokens/", views.api_tokens, name="api_tokens"),
    path(
        "accounts/api-tokens/<int:token_id>/revoke/",
        views.revoke_api_token,
        name="revoke_api_token",
    ),
]
