import pytest


@pytest.fixture
def canaries(settings):
    """Three canaries in every list loaded, as outside the tests."""
    from yobikake.incidents import canaries

    settings.YOBIKAKE_CANARIES_PER_LIST = 3
    canaries.forget()
    return canaries
