"""Caption memory: store every caption, find it again by words, time and camera (no ROS)."""
