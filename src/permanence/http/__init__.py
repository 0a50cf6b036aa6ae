"""The HTTP API: the app factory (:mod:`permanence.http.app`) and its routers."""
