"""Measure a job while it runs: process-tree sampling (psutil), RAPL and NVML energy, an offline spool.

Used by ``powermeter track`` (:mod:`.commands`) and by ``powermeter.client.track`` (:mod:`.api`).
"""
