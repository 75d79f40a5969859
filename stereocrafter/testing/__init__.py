"""Test support as a family: tiny random weights in the published layout (``weights``), test media
(``media``), free ports (``net``) and the one local stack (``stack``: moto + the service on tiny
weights) that the demo, the benches, the image smoke and the tests share."""
