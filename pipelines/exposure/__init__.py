"""Where a package runs (``imagefleet exposure``): ``find`` (pure) matches bases by a package's
version or a CVE's recorded fix and joins the stages, friend teams and groups pointing at or running
them; ``cli`` is the command; ``unfixed_cves`` is the scorecard's question about one base."""

from __future__ import annotations

from pipelines.exposure.unfixed import unfixed_cves

__all__ = ["unfixed_cves"]
