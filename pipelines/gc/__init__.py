"""``imagefleet gc``: ``plan`` (pure) decides what no record owns, ``sweep`` lists the resources,
gathers the records and carries the plan out, ``cli`` is the command."""
