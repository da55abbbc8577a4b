from tests.calling.conftest import calling_day  # noqa: F401 - the clock on a calling day
