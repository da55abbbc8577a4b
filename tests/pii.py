"""Synthetic personal data the suite feeds into Yobikake where a careless system would
record it. No event may ever contain any of it (checked after every database test).
Until the synthetic generator arrives with the intake issue, these few hand-made values
stand in; they describe no one."""

SYNTHETIC_PERSONAL_DATA = (
    "山田太郎",
    "ヤマダタロウ",
    "ﾔﾏﾀﾞﾀﾛｳ",
    "090-1234-5678",
    "09012345678",
    "058-000-0000",
    "岐阜市神田町9丁目99番9号",
    "500-0000",
    "S45.3.2",
    "1234567890",
)
