"""What the SQLite and PostgreSQL stores share: their queries, written once in the SQL both speak.

`?` placeholders (the PostgreSQL connection turns them into its own), `"end"` quoted,
`RETURNING id`, and conditional UPDATEs that name the statuses they may leave. What
differs between the two databases comes from the store as a hook: its clock, its
search condition and two expressions of the Statistics query.
"""

from .downloads import Downloads
from .edits import SegmentEdits
from .hosts import Hosts
from .lifecycle import Lifecycle
from .media import Media
from .queries import JobQueries

__all__ = ["Downloads", "Hosts", "JobQueries", "Lifecycle", "Media", "SegmentEdits"]
