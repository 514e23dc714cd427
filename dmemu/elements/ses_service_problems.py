"""SES Service Problem Management: DataMiner Ticketing tickets synchronised with ServiceNow
(SNOW) through SES's TMF656 API.

What the connector's help page says, and where it lives here (the synchronisation itself is
the shared core, `service_problem_sync`, whose docstring has the field ownership table):

* **HTTP connection** (IP address/host, IP port 443, bus address ``BypassProxy``): the API is
  reached on the element's own host and port, under *API Base Path* (SES's
  ``/gstm/dataminer/tmf/api/v1/tmf656`` by default), with basic authentication (*Username*,
  *Password*; the password is write-only).
* **Initialization**: nothing goes on the network until *API Base Path*, *Username* and
  *Password* are filled in on the Configuration page; *Synchronization Status* says what is
  missing.
* **Ticket Synchronization State** enables or disables synchronisation; **Ticket
  Synchronization Frequency** is the time between two cycles (10 s to a day, 60 s by default).
* **General page**: the managed tickets (DataMiner ticket id, ticket info, service problem id,
  incident number ``INC...``, incident link, Creation Status None -> Buffered -> Created, the
  state on each side, last synchronised, last error) and the synchronisation status.
* **DataMiner Ticketing licence**: without it the element says so and synchronises nothing.

Later versions' behaviour (REFERENCE §3): changes are polled with ServiceNow's encoded query
``sysparm_query=u_source=dataminer^sys_updated_on>=<YYYY-MM-DD HH:MM:SS>`` (second precision,
``>=`` so records of the watermark's second are never skipped), creates are POSTed on up to 5
parallel connections, changes are PATCHed, and a ticket resolved or closed in DataMiner patches
its problem to ``resolved``. Only the problems DataMiner created (``u_source=dataminer``) are
synchronised, unless *Import Upstream Problems* is enabled. A create carries the DataMiner
ticket id (ServiceNow's ``correlation_id``), so a create whose answer was lost is found again
rather than sent twice.
"""

from __future__ import annotations

from dmemu.protocol import HttpConnection, Protocol

from . import service_problem_sync as sync

SES_TMF656_BASE_PATH = "/gstm/dataminer/tmf/api/v1/tmf656"

SES_FLAVOUR = sync.Flavour(
    name="SES Service Problem Management",
    ticket_type="SES Service Problem",
    default_base_path=SES_TMF656_BASE_PATH,
    servicenow_query=True,
    import_default=sync.DISABLED,  # the help page and later versions: only u_source=dataminer problems
)


class SesServiceProblemManagement(Protocol):
    name = "SES Service Problem Management"
    version = "1.0.0.1"
    description = "Synchronizes tickets between DataMiner Ticketing and SNOW through SES's TMF656 API."
    connection = HttpConnection(default_port=443)
    pages = sync.PAGES
    parameters = sync.parameters(SES_FLAVOUR)
    tables = sync.tables(SES_FLAVOUR)
    timers = sync.TIMERS
    qactions = sync.qactions(SES_FLAVOUR)


__all__ = ["SES_FLAVOUR", "SES_TMF656_BASE_PATH", "SesServiceProblemManagement"]
