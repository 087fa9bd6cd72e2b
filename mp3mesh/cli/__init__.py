"""cli: the mesh's client side over the generated stubs: the `mp3mesh` CLI
(mp3mesh.cli.main) and its core, mp3mesh.cli.client.MeshClient (also used by the demo, the
tests and the benchmarks).

Not part of any server: the services never import it.
"""

import os


def run() -> None:
    """The `mp3mesh` console script. gRPC's own log lines (TLS handshake failures...) are
    not for a CLI's user, who gets one line per failure: they are turned off before gRPC
    loads, unless GRPC_VERBOSITY asks for them."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from mp3mesh.cli.main import main  # imported here: gRPC must not load before the line above

    main()
