"""Fast tests of pure code: the domain, parsers, the stress engine, the architecture."""
