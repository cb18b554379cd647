"""powermeter: energy, carbon, water and cost metering."""

__version__ = "0.1.0"
