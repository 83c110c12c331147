"""The host-side LwM2M server (`m2mkit lwm2m serve`) and its payload codecs. aiocoap is imported
when the server is first used, not with the command line."""

__all__ = ["LwM2MError", "Registration", "Reply", "Server", "ServerThread"]


def __getattr__(name):
    if name in ("LwM2MError", "Registration", "Reply", "Server"):
        from . import server

        return getattr(server, name)
    if name == "ServerThread":
        from .runner import ServerThread

        return ServerThread
    raise AttributeError(name)
