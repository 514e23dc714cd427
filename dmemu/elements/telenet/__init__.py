"""The Telenet SAM ticketing suite: Ticket Clients, the Ticket Gateway and the Topology Database,
which work together (REFERENCE §4). Alarm-started flows take hold of a free Ticket Client,
search through it, and send creates, updates and closes through the Gateway to the ticketing
service (OSB), one request at a time."""
