"""The SIM reconstruction core: pure array functions (no I/O, no Qt, no hardware)."""
