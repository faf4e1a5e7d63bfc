"""``imagefleet gc``: ``plan`` (pure) decides what no record owns, ``sweep`` lists the resources,
gathers the records and carries the plan out, ``removal`` removes an image with its snapshots and
what a failed or killed bake left, ``cli`` is the command."""
