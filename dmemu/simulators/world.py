"""The operator's world the inventory is drawn from: customers, offerings, teleports, the fleet and
its bands, the states items take, and the twelve resource types with their hierarchy.
"""

from __future__ import annotations

import attrs

from .words import _Weighted


@attrs.frozen
class _Party:
    code: str
    name: str


@attrs.frozen
class _Offering:
    code: str
    name: str
    version: str  # of its service specification
    cir_mbps: tuple[int, int]


@attrs.frozen
class _Teleport:
    code: str
    name: str


@attrs.frozen
class _Satellite:
    name: str
    position: str  # orbital position, e.g. "19.2E"; "MEO" for the medium-orbit constellation
    bands: tuple[str, ...]
    launched: int


@attrs.frozen
class _Band:
    name: str
    uplink_start_mhz: float
    translation_mhz: float  # uplink minus downlink frequency
    spacing_mhz: float  # between transponder centres
    width_mhz: float  # usable transponder bandwidth
    channels: int  # transponders per polarization
    symbol_rates_msps: tuple[float, ...]


OPERATOR = _Party("ORG-SES", "SES S.A.")
CUSTOMERS = tuple(
    _Party(f"CUST-{i + 1:04d}", name)
    for i, name in enumerate((
        "Northwind Shipping", "Aurora Mobile", "Bluewave Broadcasting", "Caspian Energy", "Meridian Airlines",
        "Polaris Telecom", "Atlas Government Services", "Coral Cruises", "Helix Networks", "Sahara Mining",
        "Nordic Ferries", "Pacific Islands Telecom", "Andes Broadband", "Orion Media Group", "Boreal Offshore",
        "Kestrel Aviation", "Tethys Oil & Gas", "Lumen Relief Agency", "Vega Mobile", "Harbor Logistics",
    ))
)
OFFERINGS = (
    _Offering("MAR", "Maritime VSAT", "3.2", (2, 50)),
    _Offering("CBH", "Cellular Backhaul", "2.0", (20, 400)),
    _Offering("ENT", "Enterprise Network", "1.4", (5, 200)),
    _Offering("GOV", "Government Secure Link", "1.1", (10, 300)),
    _Offering("AER", "Aero Connectivity", "2.3", (50, 500)),
    _Offering("BRD", "Broadcast Distribution", "4.0", (30, 120)),
    _Offering("OUV", "Occasional Use Video", "1.7", (8, 45)),
    _Offering("NRG", "Energy Remote Site", "2.5", (2, 30)),
    _Offering("TRK", "IP Trunking", "3.0", (100, 2000)),
)
TELEPORTS = (
    _Teleport("BTZ", "Betzdorf Teleport"), _Teleport("RDU", "Redu Teleport"), _Teleport("MNS", "Manassas Teleport"),
    _Teleport("WDB", "Woodbine Teleport"), _Teleport("VVY", "Vernon Valley Teleport"), _Teleport("HWL", "Hawley Teleport"),
    _Teleport("GIB", "Gibraltar Teleport"), _Teleport("STO", "Stockholm Teleport"), _Teleport("MUC", "Munich Teleport"),
    _Teleport("JNB", "Johannesburg Teleport"), _Teleport("LIM", "Lima Teleport"), _Teleport("PER", "Perth Teleport"),
)
FLEET = (
    _Satellite("ASTRA 1KR", "19.2E", ("Ku",), 2006), _Satellite("ASTRA 1L", "19.2E", ("Ku", "Ka"), 2007),
    _Satellite("ASTRA 1M", "19.2E", ("Ku",), 2008), _Satellite("ASTRA 1N", "19.2E", ("Ku",), 2011),
    _Satellite("ASTRA 2E", "28.2E", ("Ku", "Ka"), 2013), _Satellite("ASTRA 2F", "28.2E", ("Ku", "Ka"), 2012),
    _Satellite("ASTRA 2G", "28.2E", ("Ku", "Ka"), 2014), _Satellite("ASTRA 3B", "23.5E", ("Ku", "Ka"), 2010),
    _Satellite("ASTRA 5B", "31.5E", ("Ku", "Ka"), 2014), _Satellite("SES-4", "22.0W", ("C", "Ku"), 2012),
    _Satellite("SES-5", "5.0E", ("C", "Ku"), 2012), _Satellite("SES-6", "40.5W", ("C", "Ku"), 2013),
    _Satellite("SES-9", "108.2E", ("Ku",), 2016), _Satellite("SES-10", "67.0W", ("Ku",), 2017),
    _Satellite("SES-12", "95.0E", ("Ku", "Ka"), 2018), _Satellite("SES-14", "47.5W", ("C", "Ku"), 2018),
    _Satellite("SES-15", "129.0W", ("Ku", "Ka"), 2017), _Satellite("SES-17", "67.1W", ("Ka",), 2021),
    _Satellite("NSS-12", "57.0E", ("C", "Ku"), 2009), _Satellite("O3b mPOWER 1", "MEO", ("Ka",), 2022),
    _Satellite("O3b mPOWER 2", "MEO", ("Ka",), 2022),
)
BANDS = {
    "C": _Band("C", 5925.0, 2225.0, 40.0, 36.0, 12, (1.0, 2.5, 5.0, 10.0, 27.5)),
    "Ku": _Band("Ku", 14000.0, 2300.0, 40.0, 36.0, 12, (1.0, 2.5, 5.0, 10.0, 27.5)),
    "Ka": _Band("Ka", 27500.0, 9800.0, 250.0, 230.0, 10, (5.0, 10.0, 30.0, 60.0, 150.0)),
}
_BAND_NAMES = tuple(BANDS)

SERVICE_STATES = _Weighted.of(active=78, inactive=4, reserved=5, designed=3, feasibilityChecked=2, terminated=8)
RESOURCE_STATUSES = _Weighted.of(available=70, reserved=8, standby=8, alarm=5, suspended=4, unknown=5)
_CHANGE_NOTES = (
    "capacity change", "re-pointed after maintenance", "firmware upgrade", "customer requested change",
    "migrated to new equipment", "configuration audit", "contract renewal", "fault repaired",
)
_STARTED_STATES = ("active", "inactive", "terminated")
_CONTRACT_YEARS = (1, 2, 3, 5)
_MIR_MULTIPLIERS = (1, 2, 4)  # maximum information rate over committed
_SERVICE_LEVELS = ("Gold", "Silver", "Bronze")
_ADMINISTRATIVE_STATES = {"suspended": "locked", "reserved": "locked", "unknown": "shutdown"}  # else "unlocked"
_ELEMENT_TYPES = ("SCPC Carrier", "MCPC Carrier", "DVB-S2 Outroute", "TDMA Inroute")
_MODULATIONS = ("QPSK 3/4", "8PSK 2/3", "8PSK 5/6", "16APSK 3/4", "32APSK 4/5")


@attrs.frozen
class _ResourceType:
    name: str  # its "@type"
    abbreviation: str  # in names and specification ids
    weight: int  # numbers out of every 100 resource numbers
    logical: bool
    models: tuple[str, ...]  # its resource specifications
    parents: tuple[tuple[str, str], ...] = ()  # (type, relationshipType); the first is where it sits
    in_orbit: bool = False  # placed at an orbital position rather than a teleport
    leased: bool = False  # used by one customer, who appears as a related party


RESOURCE_TYPES = (
    _ResourceType("Satellite", "SAT", 1, False, ("Airbus Eurostar E3000", "Boeing 702SP", "Thales Spacebus 4000"), in_orbit=True),
    _ResourceType("Transponder", "TP", 5, False, ("Wideband transponder", "HTS beam transponder"), (("Satellite", "isContainedIn"),), in_orbit=True),
    _ResourceType("BandwidthSegment", "BWS", 10, True, ("Leased bandwidth segment",), (("Transponder", "isContainedIn"),), in_orbit=True, leased=True),
    _ResourceType("Antenna", "ANT", 5, False, ("CPI 9.3m", "General Dynamics 7.3m", "Viasat 13m", "Intellian 2.4m")),
    _ResourceType("Amplifier", "AMP", 5, False, ("Comtech Xicom TWTA", "Norsat BUC", "Advantech SSPA"), (("Antenna", "isContainedIn"),)),
    _ResourceType("Modem", "MDM", 15, False, ("iDirect iQ 200", "Comtech CDM-760", "Newtec MDM2510", "iDirect 950mp"), (("Antenna", "reliesOn"),), leased=True),
    _ResourceType("Slot", "SLT", 6, False, ("Chassis slot",), (("Modem", "isContainedIn"),)),
    _ResourceType("Card", "CRD", 10, False, ("iDirect XLC-11 line card", "Comtech CTOG-250 card", "Newtec demodulator card"), (("Slot", "isContainedIn"),)),
    _ResourceType("Port", "PRT", 16, False, ("1GE copper port", "10GE SFP+ port"), (("Card", "isContainedIn"),)),
    _ResourceType("LogicalPort", "LPT", 10, True, ("802.1Q sub-interface",), (("Port", "reliesOn"),), leased=True),
    _ResourceType("Circuit", "CKT", 12, True, ("Layer 2 circuit", "IP transit circuit"), (("LogicalPort", "reliesOn"), ("BandwidthSegment", "reliesOn")), leased=True),
    _ResourceType("Multicast", "MCS", 5, True, ("IP multicast group",), (("Circuit", "reliesOn"),), leased=True),
)
_TYPE_INDEX = {resource_type.name: i for i, resource_type in enumerate(RESOURCE_TYPES)}
