"""Project risk assessment and buffer stress testing: reads the ledger and its read models."""
