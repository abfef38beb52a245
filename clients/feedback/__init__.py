"""Steering the microscope from live results: control loop, controllers, actuators, `lptem control`."""
