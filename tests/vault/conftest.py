import pytest

from yobikake.vault import devserver


@pytest.fixture(scope="session")
def openbao():
    """A real OpenBao dev server on a free loopback port, for the whole session."""
    try:
        devserver.bao_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server = devserver.start()
    yield server
    server.stop()
