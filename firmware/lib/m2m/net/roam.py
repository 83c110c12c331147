# Permanent-roaming guard: counts the days (UTC, from hal.epoch()) on which the device was
# registered on a visited network, persisted in a small JSON file so that reboots keep the count.
# tick(roaming, day) -> 0 nothing new, 1 a new roaming day counted, 2 the same and past the limit.
import json


class Guard:
    def __init__(self, path, limit=0):
        self.path = path
        self.limit = limit
        self.days = 0
        self.last = None
        try:
            with open(path) as f:
                d = json.load(f)
            self.days = int(d.get("days", 0))
            self.last = d.get("last")
        except (OSError, ValueError):
            pass

    def tick(self, roaming, day):
        if not roaming or day == self.last:
            return 0
        self.days += 1
        self.last = day
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"days": self.days, "last": day}, f)
        import os
        os.rename(tmp, self.path)
        return 2 if self.limit and self.days > self.limit else 1
