"""Figures of the virtual device itself: the heap its machinery holds (the ESP32 port's stand-in,
vboot.py and its mounted image, or m2mkit.testing's `-c` prelude), which is ROM on a board and is
added to -X heapsize on top of the heap asked for (vdev/bridge.py port_heap)."""


def port_heap_figures():
    from .testing import micropython
    from .vdev.bridge import port_heap

    mp = micropython()
    yield {"name": "vdev_port_heap_vboot", "value": port_heap("256K", "vboot", mp), "unit": "bytes",
           "note": "what the virtual device's machinery holds when boot.py starts (stand-in, vboot.py, its "
                   "qstr placeholders and pools up to the 2560-entry one; its mount and a board's pools up "
                   "to 640 entries taken off), added to -X heapsize; unix port"}
    yield {"name": "vdev_port_heap_prelude", "value": port_heap("160K", "prelude", mp), "unit": "bytes",
           "note": "what m2mkit.testing's -c prelude (the port stand-in) holds, added to -X heapsize by the "
                   "benches and heap-limited tests that run micropython directly; unix port"}
    yield {"name": "vdev_port_heap_pools", "value": port_heap("160K", "pools", mp), "unit": "bytes",
           "note": "the same prelude with its qstr pools made up to the 1280-entry one (placeholder names), "
                   "which the MQTT and LwM2M heap figures and the day test use; unix port"}
