"""The cluster around the chips: network, facility and the cost of running it.

* :mod:`~codesign.model.cluster.network`: switches, NICs and optics of the scale-out network
  and the switched scale-up domain, per chip;
* :mod:`~codesign.model.cluster.facility`: a power budget -> chip count, PUE, capital cost
  per second.
"""

from __future__ import annotations
