"""Stand-in for the AIMO-2 gateway: as AIMO-3's, with a 30-minute deadline per answer."""

from .aimo_3_gateway import AIMO3Gateway


class AIMO2Gateway(AIMO3Gateway):
    RESPONSE_TIMEOUT_S = 60 * 30
