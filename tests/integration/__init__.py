"""Tests against real databases (an SQLite file and PostgreSQL) and real HTTP servers."""
