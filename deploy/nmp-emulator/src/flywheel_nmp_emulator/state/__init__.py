"""What the emulated cluster knows, and how it survives a restart."""
