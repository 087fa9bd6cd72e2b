"""cli: the mesh's client side, over the generated stubs (the `mp3mesh` CLI will live here).

Not part of any server: the services never import it.
"""
