"""Registers the host-tool commands (issue #12), each defined in its own module, on the `m2mkit` group."""

import importlib

MODULES = ("deploy",)


def register(group):
    for name in MODULES:
        group.add_command(importlib.import_module(f".{name}", __package__).command)
