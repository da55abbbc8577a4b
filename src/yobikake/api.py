"""The REST API at /api/v1, documented by OpenAPI at /api/v1/docs."""

from ninja import NinjaAPI

from yobikake.accounts.api_auth import ApiTokenAuth, VerifiedSessionAuth
from yobikake.audit.api import router as audit_router
from yobikake.calling.api import router as calling_router
from yobikake.intake.api import router as intake_router
from yobikake.reports.api import router as reports_router
from yobikake.tenancy.api import router as tenancy_router

api = NinjaAPI(
    title="Yobikake API",
    version="1",
    urls_namespace="api-v1",
    auth=[ApiTokenAuth(), VerifiedSessionAuth()],
)
api.add_router("", tenancy_router)
api.add_router("", audit_router)
api.add_router("", intake_router)
api.add_router("", calling_router)
api.add_router("", reports_router)
