"""The query builder: every read goes through here.

It turns list parameters (filters, search, sort, cursor, sparse fields, count)
into SQL, within the caller's data scope, selecting only the columns of the
fields the caller may see. One grammar serves every list: an entity's records,
the records related to one record, the recycle bin, a record's history, users,
teams and the audit trail (each a ``Source``: a table described by a spec).
Lists of records never show records in the recycle bin, except the bin itself.
Keyset pagination: the cursor carries the sort values of the last row, so page
2,000 costs what page one does.

Statements are built once per shape (the filters and their operators, the
sort, a cursor or none, the scope, the columns) and kept; a request binds its
values as parameters. Building a statement costs more than running a page.
"""

from .builder import QueryBuilder
from .grammar import LIST_PARAMETERS, MAX_IN_VALUES, OPERATORS, TAG_PARAMETERS, Filter, ListRequest
from .sources import ALL, DELETED, LIVE, NOT_NULL, Source
from .statements import Page, Within

__all__ = ["ALL", "DELETED", "LIST_PARAMETERS", "LIVE", "MAX_IN_VALUES", "NOT_NULL", "OPERATORS", "TAG_PARAMETERS",
           "Filter", "ListRequest", "Page", "QueryBuilder", "Source", "Within"]
