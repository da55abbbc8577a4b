from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "yobikake.vault"
    verbose_name = "保管庫"

    def ready(self) -> None:
        # Connects the SQL function the reveal's query needs on every new SQLite
        # connection (grants._add_sqlite_functions), before any connection is made.
        from yobikake.vault import grants  # noqa: F401
