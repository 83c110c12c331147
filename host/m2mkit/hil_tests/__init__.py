"""m2mkit's end-to-end suite for `pytest -p m2mkit.hil`: the same tests on the virtual device and on
a real board (see README, "Bench guide")."""
