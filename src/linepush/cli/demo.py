"""`linepush demo`: the whole flow against an in-process emulator."""
