"""`linepush emulator`: serve the local LINE platform."""
