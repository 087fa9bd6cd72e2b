"""The local REST edge: HTTP/JSON to gRPC, driven by the protos' google.api.http rules.

The same REST surface as the Envoy edge (grpc_json_transcoder), plus the seed's
multipart ``POST /upload``. Run it with ``python -m mp3mesh.shim``.
"""
