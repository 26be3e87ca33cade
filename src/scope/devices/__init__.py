"""Device drivers: cameras, the pattern and trigger controller, and their simulators.

Import the modules you need (``scope.devices.controller``, ``scope.devices.emulator``, ...);
this package imports nothing itself so that each driver's dependencies load only when used.
"""
