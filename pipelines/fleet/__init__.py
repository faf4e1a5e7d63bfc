"""The fleet view (``imagefleet fleet``): ``discovery`` finds the groups and the AMIs they run,
``view`` (pure) turns them into rows, a summary per OS release and burndown series, ``snapshot``
records each view, ``plot`` draws the burndown, ``cli`` is the command."""
