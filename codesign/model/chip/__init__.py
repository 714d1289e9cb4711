"""One accelerator package: die area, power and cost, from its micro-architecture.

* :mod:`~codesign.model.chip.area`: the area model (compute, SRAM, PHYs, splitting over the
  reticle, HBM shoreline);
* :mod:`~codesign.model.chip.datasheet`: a catalog chip's resources and area from its
  published datasheet (what the area model needs and the datasheet leaves out, assumed);
* :mod:`~codesign.model.chip.power`: energy per operation and byte, TDP, power at a clock;
* :mod:`~codesign.model.chip.cost`: dies per wafer, yield, die, HBM and package cost.
"""

from __future__ import annotations
