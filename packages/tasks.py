"""Catalogue tasks. The scheduled sync lives in builds/sync_tasks.py because it also
refreshes the build queue, and packages does not import builds."""
