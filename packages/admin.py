"""Project and Version are registered in builds/admin.py: their actions (rebuild, skip,
unskip) call builds.queue, and imports point one way, packages <- builds."""
