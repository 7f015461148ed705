"""The ``zaqar://`` oslo.messaging driver (entry point: driver.ZaqarDriver)."""
