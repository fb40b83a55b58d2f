"""Machinery shared by every training stage: distributed setup, exact-resume checkpoints, schedules."""
