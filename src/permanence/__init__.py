"""permanence."""
