"""The host-side LwM2M server (`m2mkit lwm2m serve`) and its payload codecs."""

from .server import LwM2MError, Registration, Reply, Server

__all__ = ["LwM2MError", "Registration", "Reply", "Server"]
