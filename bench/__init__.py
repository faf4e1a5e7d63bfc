"""imagefleet's speed record (`make bench`): each area's benchmark, run as its own program, and the
record they write to ``bench/results.json``. Not part of the installed package."""
