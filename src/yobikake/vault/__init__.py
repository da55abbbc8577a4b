"""The vault: the key service port and its adapters; later, envelope encryption, blind
indexes and the reveal gate. The port and adapters import no Django."""
