"""Frame sources: recorded movies and their readers, replay, the simulated camera and microscope."""
