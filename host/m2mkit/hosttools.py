"""Registers the host-tool commands (issue #12), each defined in its own module, on the `m2mkit` group."""

import importlib

MODULES = ("deploy", "flash", "provision", "inventory", "shell")
IMAGE_MODULES = ("fleetimage",)  # subcommands of `m2mkit image`


def register(group):
    for name in MODULES:
        mod = importlib.import_module(f".{name}", __package__)
        for cmd in getattr(mod, "commands", None) or (mod.command,):
            group.add_command(cmd)
    for name in IMAGE_MODULES:
        group.commands["image"].add_command(importlib.import_module(f".{name}", __package__).command)
