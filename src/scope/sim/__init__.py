"""The SIM reconstruction core: pure array functions (no I/O, no Qt, no hardware).

The main entry points::

    from scope.sim import estimate_parameters, SIMReconstructor, reconstruct_stack

- :mod:`scope.sim.forward` simulates raw SIM stacks; :mod:`scope.sim.samples` makes samples.
- :mod:`scope.sim.estimate` finds the pattern (wave vectors, phases, modulation).
- :mod:`scope.sim.reconstruct` is the cached reconstruction operator.
- :mod:`scope.sim.pipeline` reconstructs whole stacks; :mod:`scope.sim.diagnostics` and
  :mod:`scope.sim.metrics` measure spectra and resolution.
- :mod:`scope.sim.gratings` draws illumination patterns for DMD/LCoS/projectors.
"""

from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.pipeline import reconstruct_stack
from scope.sim.reconstruct import NoiseModel, ReconstructionSettings, SIMReconstructor

__all__ = [
    "AngleParameters",
    "EstimationSettings",
    "NoiseModel",
    "ReconstructionSettings",
    "SIMParameters",
    "SIMReconstructor",
    "estimate_parameters",
    "reconstruct_stack",
]
