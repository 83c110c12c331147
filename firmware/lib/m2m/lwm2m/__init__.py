# LwM2M 1.1 client (OMA-TS-LightweightM2M_Core-V1_1 and _Transport-V1_1) over m2m.coap. Imported
# only when config "lwm2m" names a server (README "LwM2M client (device)"). Modules: tlv, cbor,
# senml (content formats), model (objects, resources, values), objects (0 1 3 4 5 7 and IPSO),
# client (bootstrap, registration, the server's operations, notifier, Send), transport (UDP, DTLS).
from micropython import const

# content formats (OMA core 7.1, IANA CoAP Content-Formats)
TEXT = const(0)
LINK = const(40)
OPAQUE = const(42)
SENML_JSON = const(110)
SENML_CBOR = const(112)
TLV = const(11542)
