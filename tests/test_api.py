"""The API's schema and its docs page name every route and field: only a signed-in user
(a session past the TOTP step, or a personal API token) sees them."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.tenancy.test_api import bearer

DOCS = "/api/v1/docs"
SCHEMA = "/api/v1/openapi.json"


@pytest.mark.parametrize("path", [DOCS, SCHEMA])
def test_anonymous_gets_no_schema_and_no_docs(world, path):
    response = Client().get(path)
    assert response.status_code == 401
    assert b"openapi" not in response.content.lower()


def test_a_browser_without_a_session_is_sent_to_the_login_page(world):
    response = Client().get(DOCS, HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/login/" and parse_qs(location.query) == {"next": [DOCS]}


@pytest.mark.parametrize("path", [DOCS, SCHEMA])
def test_a_session_without_its_second_factor_gets_nothing(world, path):
    client = Client()
    client.force_login(world.staff_a, backend="yobikake.accounts.backends.ExpiringAccountBackend")
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", [DOCS, SCHEMA])
def test_a_revoked_or_unknown_token_gets_nothing(world, path):
    bogus = {"HTTP_AUTHORIZATION": "Bearer ybk_not-a-token"}
    assert Client().get(path, **bogus).status_code == 401


def test_a_verified_session_sees_the_docs_and_the_schema(world, as_user):
    client = as_user(world.staff_a)
    docs = client.get(DOCS)
    assert docs.status_code == 200 and b"openapi.json" in docs.content
    schema = client.get(SCHEMA)
    assert schema.status_code == 200
    assert "/api/v1/insurers" in schema.json()["paths"]


def test_an_api_token_fetches_the_schema(world):
    response = Client().get(SCHEMA, **bearer(world.supervisor))
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Yobikake API"
