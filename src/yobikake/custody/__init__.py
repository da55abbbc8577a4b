"""The custody domain: the custodian, the only holder of the keys that open.

The application domain (web, workers, the database and their host) seals new data to
each list's public key and computes blind indexes; it holds nothing that opens a stored
field. The custodian (`yobikake custodian serve`) is a separate process with its own home
directory (`var/custody/` in the embedded profile), its own credentials, its own ledger
and its own alert channel; in production it runs on its own host, administered by the
federation's security officer (docs/threat-model.md).

This package imports nothing of the application domain but `yobikake.jp` and shared
crypto, and no Django: whatever the application's administrator can change (settings,
database, code on the application host) must not reach into it. The application reaches
it only through the port in `yobikake.vault.custodian` (HTTP with mutual TLS, or an
in-process fake for unit tests); `protocol` is what both sides share.
"""
