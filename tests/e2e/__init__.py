"""End to end through the command line, as a user runs it (and the README tour)."""
