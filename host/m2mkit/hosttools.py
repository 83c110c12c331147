"""Registers the host-tool commands (issue #12), each defined in its own module, on the `m2mkit` group."""

import importlib

MODULES = ("deploy",)
IMAGE_MODULES = ("fleetimage",)  # subcommands of `m2mkit image`


def register(group):
    for name in MODULES:
        group.add_command(importlib.import_module(f".{name}", __package__).command)
    for name in IMAGE_MODULES:
        group.commands["image"].add_command(importlib.import_module(f".{name}", __package__).command)
