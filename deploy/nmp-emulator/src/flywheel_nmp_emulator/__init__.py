"""NMP emulator."""
