"""Small utilities: throttles, rate windows, JPEG, the OOM handler (no ROS)."""
