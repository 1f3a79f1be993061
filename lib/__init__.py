"""Small Django-free helpers shared by the apps (each with its own tests)."""
