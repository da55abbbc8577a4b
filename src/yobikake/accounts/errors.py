class AccountError(Exception):
    """A refusal the user can understand and act on; the message is shown as it is.
    `code` is what the audit log records (a short code, never the message, which may
    quote what the user typed)."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class NotPermitted(AccountError):
    pass
