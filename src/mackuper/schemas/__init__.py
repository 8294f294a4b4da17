"""Typed settings and API input: one pydantic model per kind, secrets marked on the field.

`base` holds the marker and the one place that splits settings into the public
JSON a column stores and the secrets the master key encrypts; the other modules
hold one model per source, destination, encryption, notification and command kind,
and the request bodies and query strings of the JSON API. The web layer validates
with them and `web.openapi` describes the API from them.
"""
